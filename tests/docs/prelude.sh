# What the shell running a documented shell block knows first (as BASH_ENV): tests/docs/test_docs_run.py says why.
unset BASH_ENV  # not sourced again by make's recipe shells, nor by any other bash the block starts
set -euo pipefail

# The venv's stamps taken as they are (-o for each, runner.keep_venv): a block's make never installs into the venv
# the suite is running in.
read -ra KEEP_VENV <<< "${DOC_KEEP_VENV:-}"

# make: the serve verbs are started by the test, from a line of their own; DOC_DRY_RUN_VERBS (`*`: every verb) are
# checked with make -n (the verb must exist, and every NAME=value given must reach what make would run); the rest run.
make() {
    local verb="" word plan
    for word in "$@"; do
        case "$word" in -* | *=*) ;; *) verb=$word && break ;; esac
    done
    if [[ " $DOC_SERVE_VERBS " == *" $verb "* ]]; then
        echo "doctest: 'make $verb' must be a line of its own: the test starts it as a server" >&2
        return 2
    fi
    if [[ $DOC_DRY_RUN_VERBS != "*" && " $DOC_DRY_RUN_VERBS " != *" $verb "* ]]; then
        command make "${KEEP_VENV[@]}" "$@"
        return
    fi
    plan=$(command make -n "${KEEP_VENV[@]}" "$@") || return
    printf 'doctest: make -n %s\n%s\n' "$*" "$plan"
    for word in "$@"; do
        if [[ $word == [A-Za-z_]*=?* && $plan != *"${word#*=}"* ]]; then
            echo "doctest: make $verb: ${word%%=*}=${word#*=} does not reach what make would run" >&2
            return 1
        fi
    done
}

# curl: an HTTP error fails the command, as it fails the reader; a line whose comment names a status (`# 401`)
# has DOC_EXPECT_STATUS set by the test and must get exactly that status.
curl() {
    if [[ -z "${DOC_EXPECT_STATUS:-}" ]]; then
        command curl --fail-with-body "$@"
        return
    fi
    local headers status
    headers=$(mktemp)
    command curl --dump-header "$headers" "$@" || { rm -f "$headers" && return 1; }
    status=$(awk '/^HTTP\// { code = $2 } END { print code }' "$headers")
    rm -f "$headers"
    if [[ "$status" != "$DOC_EXPECT_STATUS" ]]; then
        echo "doctest: expected HTTP $DOC_EXPECT_STATUS, got ${status:-no answer}: curl $*" >&2
        return 1
    fi
}
