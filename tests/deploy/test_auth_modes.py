"""template.yaml in each AuthMode: rendered (conditions resolved as CloudFormation would), linted with cfn-lint,
and walked route by route for the authorizer each carries."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.decode import decode

from tests.support import REPO

TEMPLATE = REPO / "template.yaml"
PROTECTED = {"POST /predict", "POST /predict/batch", "POST /uploads", "GET /results/{id}"}
OPEN = {"GET /", "GET /ui", "GET /{proxy+}"}
# AuthMode -> the AuthorizationType of every protected route
EXPECTED = {"none": "NONE", "jwt": "JWT", "iam": "AWS_IAM"}


def resolve(node: Any, conditions: dict[str, bool]) -> Any:
    """Fn::If and AWS::NoValue resolved for the given condition values; anything else kept as it is."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return resolve(when_true if conditions[name] else when_false, conditions)
        resolved = {key: resolve(value, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != {"Ref": "AWS::NoValue"}}
    if isinstance(node, list):
        return [resolve(value, conditions) for value in node if value != {"Ref": "AWS::NoValue"}]
    return node


def render(mode: str) -> dict[str, Any]:
    """The template as deployed with AuthMode=mode: resolved conditions, resources of false conditions gone."""
    template, problems = decode(str(TEMPLATE))
    assert problems == []
    rendered = copy.deepcopy(template)
    conditions = {"AuthJwt": mode == "jwt", "AuthIam": mode == "iam"}
    rendered["Parameters"]["AuthMode"]["Default"] = mode
    rendered["Resources"] = {name: node for name, node in rendered["Resources"].items()
                             if conditions.get(node.get("Condition", ""), True)}
    for node in rendered["Resources"].values():
        node.pop("Condition", None)
    rendered["Resources"] = resolve(rendered["Resources"], conditions)
    del rendered["Conditions"]
    return rendered


def authorization(rendered: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Route key -> (AuthorizationType, AuthorizerId) as the rendered template has them."""
    return {node["Properties"]["RouteKey"]: (node["Properties"].get("AuthorizationType", "NONE"),
                                             node["Properties"].get("AuthorizerId"))
            for node in rendered["Resources"].values() if node["Type"] == "AWS::ApiGatewayV2::Route"}


@pytest.mark.parametrize("mode", EXPECTED)
def test_each_mode_renders_a_template_cfn_lint_accepts(mode: str) -> None:
    rendered = render(mode)
    if mode == "jwt":  # a deployable jwt stack names an issuer and an audience
        rendered["Parameters"]["JwtIssuer"]["Default"] = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC"
        rendered["Parameters"]["JwtAudience"]["Default"] = "app-client-id"
    problems = lint(json.dumps(rendered))  # JSON is YAML too; cfn-lint reads either
    assert problems == [], "\n".join(str(problem) for problem in problems)


@pytest.mark.parametrize(("mode", "kind"), EXPECTED.items())
def test_protected_routes_carry_the_modes_authorizer_and_open_routes_none(mode: str, kind: str) -> None:
    routes = authorization(render(mode))
    assert set(routes) == PROTECTED | OPEN
    for route in PROTECTED:
        expected_id = {"Ref": "JwtAuthorizer"} if mode == "jwt" else None
        assert routes[route] == (kind, expected_id), route
    for route in OPEN:
        assert routes[route] == ("NONE", None), route
    assert ("JwtAuthorizer" in render(mode)["Resources"]) is (mode == "jwt")


def test_the_jwt_authorizer_reads_the_bearer_token_for_the_configured_issuer() -> None:
    authorizer = render("jwt")["Resources"]["JwtAuthorizer"]["Properties"]
    assert (authorizer["AuthorizerType"], authorizer["IdentitySource"]) == ("JWT", ["$request.header.Authorization"])
    assert authorizer["JwtConfiguration"] == {"Issuer": {"Ref": "JwtIssuer"}, "Audience": {"Ref": "JwtAudience"}}


def test_none_is_the_default_and_the_only_choices_are_the_three() -> None:
    template, _ = decode(str(TEMPLATE))
    assert template["Parameters"]["AuthMode"]["Default"] == "none"
    assert template["Parameters"]["AuthMode"]["AllowedValues"] == ["none", "jwt", "iam"]
