"""template.yaml, samconfig.toml, function/Dockerfile and .dockerignore: linted and read for what they promise."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from typing import Any

import pytest
from cfnlint.api import lint, lint_file
from cfnlint.decode import decode

from tests.support import REPO, template_cors_rules

TEMPLATE = REPO / "template.yaml"
BUCKET_NAME = "${AWS::StackName}-${AWS::AccountId}-${AWS::Region}"
OBJECTS = f"arn:${{AWS::Partition}}:s3:::{BUCKET_NAME}"
FUNCTIONS = ("ApiFunction", "UploadFunction")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """Parsed by cfn-lint's loader, which turns !Ref, !Sub and !GetAtt into their long forms."""
    parsed, problems = decode(str(TEMPLATE))
    assert problems == []
    return parsed


def resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]


Statement = tuple[str | list[str], list[str], dict[str, Any] | None]


def statements(template: dict[str, Any], function: str, effect: str = "Allow") -> list[Statement]:
    """(action, resources, condition) of every statement of the function's inline policies with this effect."""
    found: list[Statement] = []
    for policy in resource(template, function)["Policies"]:
        for statement in policy["Statement"]:
            assert statement["Effect"] in {"Allow", "Deny"}
            if statement["Effect"] == effect:
                found.append((statement["Action"], subs(statement["Resource"]), statement.get("Condition")))
    return found


def subs(resources: Any) -> list[str]:
    """The Fn::Sub strings of a statement's Resource (one, or a list)."""
    return [r["Fn::Sub"] for r in (resources if isinstance(resources, list) else [resources])]


def references(node: Any) -> list[str]:
    """Every logical id that ``node`` references through Ref, GetAtt or ${...} in Sub."""
    if isinstance(node, dict):
        found = [node["Ref"]] if "Ref" in node else []
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            found.append(target[0] if isinstance(target, list) else target.split(".")[0])
        if "Fn::Sub" in node and isinstance(node["Fn::Sub"], str):
            found += [name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", node["Fn::Sub"])]
        nested = [value for key, value in node.items() if key not in {"Ref", "Fn::GetAtt"}]
        return found + references(nested)
    if isinstance(node, list):
        return [ref for value in node for ref in references(value)]
    return []


def test_cfn_lint_passes() -> None:
    problems = lint_file(TEMPLATE)
    assert problems == [], "\n".join(str(problem) for problem in problems)


def test_cfn_lint_would_catch_a_broken_template() -> None:
    broken = TEMPLATE.read_text().replace("Timeout: 20", "Timeout: twenty", 1)
    assert [problem.rule.id for problem in lint(broken)] == ["E3012"]


ROUTES = {"GET /": "RootRoute", "GET /ui": "UiRoute", "GET /{proxy+}": "PagesRoute", "POST /predict": "PredictRoute",
          "POST /predict/batch": "BatchRoute", "POST /uploads": "UploadsRoute", "GET /results/{id}": "ResultsRoute"}
OPEN_ROUTES = {"GET /", "GET /ui", "GET /{proxy+}"}  # liveness, the page, /health, /docs: open in every AuthMode


def routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {name: node["Properties"] for name, node in template["Resources"].items()
             if node["Type"] == "AWS::ApiGatewayV2::Route"}
    return {properties["RouteKey"]: properties for properties in found.values()}


def test_http_api_routes_reach_the_api_function_with_payload_v2(template: dict[str, Any]) -> None:
    assert {key: name for name, node in template["Resources"].items() if node["Type"] == "AWS::ApiGatewayV2::Route"
            for key in [node["Properties"]["RouteKey"]]} == ROUTES
    for route in routes(template).values():
        assert route["ApiId"] == {"Ref": "Api"} and route["Target"] == {"Fn::Sub": "integrations/${ApiIntegration}"}
    integration = resource(template, "ApiIntegration")
    assert (integration["IntegrationType"], integration["PayloadFormatVersion"]) == ("AWS_PROXY", "2.0")
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["ApiFunction", "Arn"]}
    stage = resource(template, "ApiStage")
    assert (stage["StageName"], stage["AutoDeploy"]) == ("$default", True)
    assert set(template["Resources"]["ApiStage"]["DependsOn"]) == set(ROUTES.values())  # route settings need them
    permission = resource(template, "ApiInvokePermission")
    assert (permission["Principal"], permission["FunctionName"]) == ("apigateway.amazonaws.com", {"Ref": "ApiFunction"})


def test_uploads_and_batch_are_throttled_tighter_than_predictions(template: dict[str, Any]) -> None:
    stage = resource(template, "ApiStage")
    defaults = template["Parameters"]
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": {"Ref": "ThrottleBurst"},
                                             "ThrottlingRateLimit": {"Ref": "ThrottleRate"}}
    for route in ("POST /uploads", "POST /predict/batch"):
        assert stage["RouteSettings"][route] == {"ThrottlingBurstLimit": {"Ref": "UploadThrottleBurst"},
                                                 "ThrottlingRateLimit": {"Ref": "UploadThrottleRate"}}
    assert defaults["UploadThrottleBurst"]["Default"] < defaults["ThrottleBurst"]["Default"]
    assert defaults["UploadThrottleRate"]["Default"] < defaults["ThrottleRate"]["Default"]


def test_s3_trigger_listens_under_uploads_only(template: dict[str, Any]) -> None:
    [event] = resource(template, "UploadFunction")["Events"].values()
    assert event["Type"] == "S3"
    assert event["Properties"]["Bucket"] == {"Ref": "Bucket"}
    assert event["Properties"]["Events"] == "s3:ObjectCreated:*"
    assert event["Properties"]["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": "uploads/"}]}}


def test_least_privilege(template: dict[str, Any]) -> None:
    assert statements(template, "ApiFunction") == [
        ("s3:GetObject", [f"{OBJECTS}/models/*"], None),
        ("s3:PutObject", [f"{OBJECTS}/uploads/*"], None),  # what a presigned upload POST may do
        ("s3:GetObject", [f"{OBJECTS}/overlays/*"], None),  # summaries and presigned result URLs
        ("s3:ListBucket", [OBJECTS], {"StringLike": {"s3:prefix": "uploads/*"}}),  # does upload <id> exist
    ]
    assert statements(template, "UploadFunction") == [
        ("s3:GetObject", [f"{OBJECTS}/uploads/*", f"{OBJECTS}/models/*"], None),
        (["s3:GetObject", "s3:GetObjectVersion"], [f"{OBJECTS}/${{BatchSourcePrefix}}*"], None),  # Batch Operations
        ("s3:PutObject", [f"{OBJECTS}/overlays/*"], None),
    ]
    # its own outputs are never a source, whatever BatchSourcePrefix says
    assert statements(template, "UploadFunction", "Deny") == [
        (["s3:GetObject", "s3:GetObjectVersion"], [f"{OBJECTS}/overlays/*"], None),
    ]


def every_statement(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(where, statement) for every IAM policy statement anywhere under ``node``: roles, functions, bucket policy."""
    if isinstance(node, list):
        return [found for index, item in enumerate(node) for found in every_statement(item, f"{where}[{index}]")]
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("Statement"), list):
        return [(f"{where}.Statement[{index}]", statement) for index, statement in enumerate(node["Statement"])]
    return [found for name, value in node.items() for found in every_statement(value, f"{where}.{name}")]


def as_strings(value: Any) -> list[str]:
    """An Action or Resource as strings: one or a list; a Sub as its string, Ref and GetAtt as their JSON."""
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else item.get("Fn::Sub") or json.dumps(item) for item in items]


# The only wildcards a resource may have: every key under one prefix of the stack's bucket, and every version
# and alias of one function (``${UploadFunction.Arn}:*``, as Batch Operations invokes a qualified ARN).
SCOPED_RESOURCES = (re.compile(rf"{re.escape(OBJECTS)}(/[^*]*\*)?"), re.compile(r"\$\{\w+\.Arn\}:\*"),
                    re.compile(r"[^*]+"))


def test_every_allow_names_its_actions_and_resources(template: dict[str, Any]) -> None:
    found = every_statement(template["Resources"])
    owners = sorted({where.split(".")[1] for where, _ in found})
    assert owners == ["ApiFunction", "BatchOperationsRole", "BucketTlsOnlyPolicy", "UploadFunction"]  # all walked
    allows = [(where, statement) for where, statement in found if statement["Effect"] == "Allow"]
    assert len(allows) == len(found) - 2  # the bucket policy's TLS-only Deny and the outputs' Deny are the others
    for where, statement in allows:
        assert all("*" not in action for action in as_strings(statement["Action"])), where
        if "Principal" in statement:  # a trust policy: who may assume the role, no resource
            assert statement["Action"] == "sts:AssumeRole" and "Resource" not in statement, where
            continue
        for resource in as_strings(statement["Resource"]):
            assert any(pattern.fullmatch(resource) for pattern in SCOPED_RESOURCES), (where, resource)


@pytest.mark.parametrize(("prefix", "allowed"), [("", True), ("photos/", True), ("photos/2019/", True),
                                                 ("photos", False), ("*", False), ("a/*/", False)])
def test_batch_sources_are_one_prefix_or_the_bucket(template: dict[str, Any], prefix: str, allowed: bool) -> None:
    parameter = template["Parameters"]["BatchSourcePrefix"]
    assert parameter["Default"] == ""  # the whole bucket (but overlays/)
    assert bool(re.fullmatch(parameter["AllowedPattern"], prefix)) is allowed


def test_the_batch_operations_role_invokes_the_upload_function_only(template: dict[str, Any]) -> None:
    role = resource(template, "BatchOperationsRole")
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Effect"], trust["Principal"], trust["Action"]) == (
        "Allow", {"Service": "batchoperations.s3.amazonaws.com"}, "sts:AssumeRole")
    [policy] = role["Policies"]
    found = [(s["Effect"], s["Action"], s["Resource"]) for s in policy["PolicyDocument"]["Statement"]]
    assert found == [
        ("Allow", "lambda:InvokeFunction", [{"Fn::GetAtt": ["UploadFunction", "Arn"]},
                                            {"Fn::Sub": "${UploadFunction.Arn}:*"}]),
        ("Allow", ["s3:GetObject", "s3:GetObjectVersion"], {"Fn::Sub": f"{OBJECTS}/manifests/*"}),
        ("Allow", "s3:PutObject", {"Fn::Sub": f"{OBJECTS}/reports/*"}),
        ("Allow", "s3:GetBucketLocation", {"Fn::Sub": OBJECTS}),
    ]


def test_the_api_function_signs_uploads_into_the_stacks_bucket(template: dict[str, Any]) -> None:
    variables = resource(template, "ApiFunction")["Environment"]["Variables"]
    assert variables["UPLOAD_BUCKET"] == {"Fn::Sub": BUCKET_NAME}
    assert 60 <= int(variables["UPLOAD_URL_TTL_S"]) <= 3600


def test_browsers_may_post_uploads_and_read_results(template: dict[str, Any]) -> None:
    """The bucket's CORS rules, as the page's upload flow needs them (origins: a parameter, default "*")."""
    rules = {rule["Id"]: rule for rule in resource(template, "Bucket")["CorsConfiguration"]["CorsRules"]}
    assert rules["BrowserUploads"]["AllowedMethods"] == ["POST"]
    assert rules["BrowserResults"]["AllowedMethods"] == ["GET", "HEAD"]
    assert all(rule["AllowedOrigins"] == {"Ref": "UploadCorsOrigins"} for rule in rules.values())
    assert template["Parameters"]["UploadCorsOrigins"]["Default"] == "*"


def s3_cors_rule(rules: list[dict[str, Any]], origin: str, method: str, headers: tuple[str, ...] = ()) -> str | None:
    """The rule S3 applies to a browser's request, or None (refused): the first whose AllowedOrigins match the
    Origin, whose AllowedMethods hold the method (a preflight's Access-Control-Request-Method) and whose
    AllowedHeaders cover each header a preflight names; one "*" wildcard each
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html, "How Amazon S3 evaluates the CORS
    configuration"). moto does not evaluate rules this way (tests/integration/browser/test_page_uploads.py)."""
    for rule in rules:
        if (any(fnmatch.fnmatchcase(origin, allowed) for allowed in rule["AllowedOrigins"])
                and method in rule["AllowedMethods"]
                and all(any(fnmatch.fnmatchcase(header.lower(), allowed.lower()) for allowed in rule["AllowedHeaders"])
                        for header in headers)):
            return str(rule["ID"])
    return None


PAGE = "http://127.0.0.1:8000"  # the page at /ui, served by `make serve`; behind API Gateway, its execute-api origin


@pytest.mark.parametrize(
    ("origins", "origin", "method", "expected"),
    [
        # The page's XMLHttpRequest with upload progress is preflighted: POST, no header beyond the safelisted ones
        (None, PAGE, "POST", "BrowserUploads"),
        (None, "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", "POST", "BrowserUploads"),
        # Its fetch of the result's presigned GET URL
        (None, PAGE, "GET", "BrowserResults"),
        (None, PAGE, "HEAD", "BrowserResults"),
        # Nothing else from a browser: no PUT, no DELETE
        (None, PAGE, "PUT", None),
        (None, PAGE, "DELETE", None),
        # UploadCorsOrigins narrowed to one site admits that site only
        (["https://app.example.com"], "https://app.example.com", "POST", "BrowserUploads"),
        (["https://app.example.com"], "https://app.example.com", "GET", "BrowserResults"),
        (["https://app.example.com"], PAGE, "POST", None),
        (["https://*.example.com"], "https://app.example.com", "POST", "BrowserUploads"),
    ],
)
def test_the_bucket_admits_what_the_page_sends_and_nothing_else(
    origins: list[str] | None, origin: str, method: str, expected: str | None
) -> None:
    assert s3_cors_rule(template_cors_rules(origins), origin, method) == expected


def test_the_upload_rule_admits_any_header_a_preflight_names() -> None:
    """A page may add headers (a client library's x-amz-*): AllowedHeaders "*" takes them."""
    rules = template_cors_rules()
    assert s3_cors_rule(rules, PAGE, "POST", ("x-amz-meta-note", "content-type")) == "BrowserUploads"


def test_uploads_and_results_expire(template: dict[str, Any]) -> None:
    rules = {rule["Id"]: rule for rule in resource(template, "Bucket")["LifecycleConfiguration"]["Rules"]}
    for rule, prefix in (("ExpireUploads", "uploads/"), ("ExpireResults", "overlays/")):
        assert rules[rule]["Prefix"] == prefix and rules[rule]["Status"] == "Enabled"
        assert rules[rule]["ExpirationInDays"] == {"Ref": "ResultRetentionDays"}
    assert template["Parameters"]["ResultRetentionDays"]["Default"] == 7


def test_policies_name_the_bucket_the_template_creates(template: dict[str, Any]) -> None:
    assert resource(template, "Bucket")["BucketName"] == {"Fn::Sub": BUCKET_NAME}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functions_never_reference_the_bucket(template: dict[str, Any], function: str) -> None:
    """The S3 event makes the bucket depend on the function; a reference back is a circular dependency
    (https://github.com/aws/serverless-application-model/issues/1109). Only the event itself names it."""
    properties = {key: value for key, value in resource(template, function).items() if key != "Events"}
    assert "Bucket" not in references(properties) + references(template["Globals"])


def test_bucket_is_private_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    bucket = resource(template, "Bucket")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    [deny] = resource(template, "BucketTlsOnlyPolicy")["PolicyDocument"]["Statement"]
    insecure = {"Bool": {"aws:SecureTransport": "false"}}
    assert (deny["Effect"], deny["Action"], deny["Condition"]) == ("Deny", "s3:*", insecure)
    assert deny["Resource"] == [{"Fn::GetAtt": ["Bucket", "Arn"]}, {"Fn::Sub": "${Bucket.Arn}/*"}]


def test_failed_s3_events_land_in_the_queue(template: dict[str, Any]) -> None:
    config = resource(template, "UploadFunction")["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    queue = {"Fn::GetAtt": ["UploadFailures", "Arn"]}
    assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": queue}
    assert template["Resources"]["UploadFailures"]["Type"] == "AWS::SQS::Queue"


def test_model_comes_from_the_buckets_models_prefix(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["MODEL_URI"] == {"Fn::Sub": f"s3://{BUCKET_NAME}/${{ModelKey}}"}
    assert variables["MODEL_SHA256"] == {"Ref": "ModelSha256"}
    assert template["Parameters"]["ModelKey"]["Default"].startswith("models/")
    assert re.fullmatch(template["Parameters"]["ModelKey"]["AllowedPattern"], "models/unet-6b25f51cdeaf.onnx")
    assert not re.fullmatch(template["Parameters"]["ModelKey"]["AllowedPattern"], "uploads/x.onnx")


def test_sizes_and_timeouts(template: dict[str, Any]) -> None:
    api, upload = resource(template, "ApiFunction"), resource(template, "UploadFunction")
    assert api["Timeout"] <= 29  # HTTP API's integration limit is 30 s
    assert (api["MemorySize"], upload["MemorySize"]) == (2048, 3008)
    assert upload["Timeout"] <= 900


@pytest.mark.parametrize("function", FUNCTIONS)
def test_image_build_metadata(template: dict[str, Any], function: str) -> None:
    """Without DockerContext `sam build` silently builds nothing (https://github.com/aws/aws-sam-cli/issues/7017)."""
    node = template["Resources"][function]
    assert resource(template, function)["PackageType"] == "Image"
    metadata = node["Metadata"]
    assert set(metadata) == {"Dockerfile", "DockerContext", "DockerTag"}
    assert (REPO / metadata["DockerContext"] / metadata["Dockerfile"]).is_file()


ENTRIES = {"ApiFunction": "app.lambda_api.handler", "UploadFunction": "app.lambda_upload.handler"}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_names_its_own_entry(template: dict[str, Any], function: str) -> None:
    """One image, several commands: each function's ImageConfig Command is an importable handler."""
    [command] = resource(template, function)["ImageConfig"]["Command"]
    assert command == ENTRIES[function]
    module, _, name = command.rpartition(".")
    assert (REPO / "function" / (module.replace(".", "/") + ".py")).is_file()
    assert f"\n{name} = " in (REPO / "function" / (module.replace(".", "/") + ".py")).read_text()


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}
    assert outputs["BucketName"]["Value"] == {"Ref": "Bucket"}
    assert outputs["BatchOperationsRoleArn"]["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}
    assert outputs["UploadFunctionArn"]["Value"] == {"Fn::GetAtt": ["UploadFunction", "Arn"]}


# --- samconfig.toml ------------------------------------------------------------------------


def test_samconfig_deploys_an_image_project(template: dict[str, Any]) -> None:
    config = tomllib.loads((REPO / "samconfig.toml").read_text())["default"]
    deploy = config["deploy"]["parameters"]
    assert (deploy["resolve_s3"], deploy["resolve_image_repos"]) == (True, True)
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert config["global"]["parameters"]["stack_name"] == "unet-segmentation"
    env_file = REPO / config["local_invoke"]["parameters"]["env_vars"]
    assert set(json.loads(env_file.read_text())) == set(FUNCTIONS)


# --- the image ---------------------------------------------------------------------------


def dockerignore_admits(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    admitted = True
    for pattern in patterns:
        exclude = not pattern.startswith("!")
        if any(fnmatch.fnmatchcase(candidate, pattern.lstrip("!").rstrip("/")) for candidate in candidates):
            admitted = not exclude
    return admitted


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def dockerfile_copies() -> list[str]:
    sources = []
    for line in (REPO / "function" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    return sources


def test_dockerfile_shape() -> None:
    lines = [line for line in (REPO / "function" / "Dockerfile").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "FROM public.ecr.aws/lambda/python:3.12"
    assert lines[-1] == 'CMD ["app.lambda_api.handler"]'
    assert dockerfile_copies() == ["function/requirements.txt", "scripts/lambda_size.py",
                                   "model/weights/unet-int8.onnx", "function/app/"]


@pytest.mark.parametrize("source", dockerfile_copies())
def test_what_the_dockerfile_copies_is_in_the_context(source: str, dockerignore: list[str]) -> None:
    assert (REPO / source).exists()
    assert dockerignore_admits(source.rstrip("/"), dockerignore)


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", "tests/conftest.py", "runs/x/best.pt", "model/unet.py", "function/app/__pycache__/x.pyc",
     "model/weights/MODEL_CARD.md", "bench/run.py", ".git/HEAD"],
)
def test_the_context_keeps_everything_else_out(path: str, dockerignore: list[str]) -> None:
    assert not dockerignore_admits(path, dockerignore)
