"""Coverage-guided fuzzing of the service's ways in (atheris): ``make fuzz``, and a short run in ``make test``."""
