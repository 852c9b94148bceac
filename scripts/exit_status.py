"""Says what a command's exit status means before make turns it into make's own status 2.

    unet-segment ... || python -m scripts.exit_status unet-segment $?     # the recipe of make segment

make exits 2 whenever a recipe's command fails, whatever status the command exited with: after
unet-segment's 1 (some inputs failed, the others written) ``make segment``'s 2 reads like unet-segment's
own 2 (a usage error). This prints one line on stderr naming the command's status and what it means, then
exits with that status, so make's "Error N" line repeats it.
"""

from __future__ import annotations

import argparse
import sys

MAKE_FAILED = 2  # make's status when any recipe fails
# command -> status -> what it means, as the command's --help says (unet-segment: app.cli.command's docstring)
MEANINGS = {
    "unet-segment": {
        1: "some inputs failed (each is named above with its reason); the others are written",
        2: "a usage error (see above); nothing was written",
        130: "interrupted; ARGS=--skip-existing resumes the run",
    },
}


def describe(command: str, status: int) -> str:
    meaning = MEANINGS.get(command, {}).get(status, "see the lines above")
    return f"{command} exited with status {status}: {meaning}. make reports any failed command as status {MAKE_FAILED}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("command", help="the command's name, as MEANINGS knows it")
    parser.add_argument("status", type=int, help="the status it exited with ($? in the recipe)")
    args = parser.parse_args(argv)
    print(describe(args.command, args.status), file=sys.stderr)  # noqa: T201 - the recipe's one line
    return args.status


if __name__ == "__main__":
    sys.exit(main())
