"""JinjaTemplates: native values, lenient undefined, syntax checks, limits and the sandbox."""

from __future__ import annotations

import pytest

from cadenza.application.ports import TemplateError, Templates
from cadenza.domain.json import JSON
from cadenza.infrastructure import template_compile
from cadenza.infrastructure.template_compile import Compiled
from cadenza.infrastructure.templating import JinjaTemplates, TemplateLimits

CONTEXT: dict[str, object] = {
    "inputs": {"name": "Ada", "count": 3, "items": [1, 2, 3], "ratio": 0.5},
    "nodes": {"fetch": {"output": {"status": 200, "ok": True}}},
}


@pytest.fixture
def templates() -> JinjaTemplates:
    # A time budget no test reaches, so the size limits tested here trigger first on any machine.
    return JinjaTemplates(TemplateLimits(time_ms=600_000))


async def render(templates: JinjaTemplates, value: JSON) -> JSON:
    return await templates.render(value, CONTEXT)


async def test_implements_the_templates_port() -> None:
    port: Templates = JinjaTemplates()
    assert await port.evaluate("1 + 1", {}) == 2


async def test_string_without_template_syntax_is_returned_unchanged(
    templates: JinjaTemplates,
) -> None:
    text = "plain { text } with {single} braces"
    assert await render(templates, text) is text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.count }}", 3),
        ("{{ inputs.ratio }}", 0.5),
        ("{{ nodes.fetch.output.ok }}", True),
        ("{{ none }}", None),
        ("{{ inputs.name }}", "Ada"),
        ("{{ inputs.items }}", [1, 2, 3]),
        ("{{ nodes.fetch.output }}", {"status": 200, "ok": True}),
        ("{{ inputs.count > 2 }}", True),
    ],
)
async def test_single_expression_keeps_native_type(
    templates: JinjaTemplates, template: str, expected: JSON
) -> None:
    result = await render(templates, template)
    assert result == expected
    assert type(result) is type(expected)


async def test_whitespace_around_single_expression_is_allowed(templates: JinjaTemplates) -> None:
    assert await render(templates, "  {{ inputs.count }}\n") == 3


async def test_dict_literal_with_closing_braces_is_one_expression(
    templates: JinjaTemplates,
) -> None:
    assert await render(templates, "{{ {'a': {'b': 1}} }}") == {"a": {"b": 1}}


async def test_text_around_expressions_renders_a_string(templates: JinjaTemplates) -> None:
    assert (
        await render(templates, "Hello {{ inputs.name }}, {{ inputs.count }}!") == "Hello Ada, 3!"
    )
    assert await render(templates, "{{ inputs.count }}{{ inputs.count }}") == "33"


async def test_statements_render_as_text(templates: JinjaTemplates) -> None:
    template = "{% for i in inputs.items %}{{ i }},{% endfor %}"
    assert await render(templates, template) == "1,2,3,"


async def test_trailing_newline_is_kept(templates: JinjaTemplates) -> None:
    assert await render(templates, "line {{ inputs.count }}\n") == "line 3\n"


async def test_nested_structures_are_rendered_but_keys_are_not(templates: JinjaTemplates) -> None:
    value: JSON = {
        "{{ key }}": ["{{ inputs.count }}", {"deep": "n={{ inputs.count }}"}, 7, None, False],
    }
    assert await render(templates, value) == {"{{ key }}": [3, {"deep": "n=3"}, 7, None, False]}


async def test_tuples_ranges_and_generators_become_lists(templates: JinjaTemplates) -> None:
    assert await render(templates, "{{ (1, 2) }}") == [1, 2]
    assert await render(templates, "{{ range(3) }}") == [0, 1, 2]
    assert await render(templates, "{{ inputs.items | map('string') }}") == ["1", "2", "3"]


async def test_other_objects_become_strings(templates: JinjaTemplates) -> None:
    assert isinstance(await render(templates, "{{ lipsum }}"), str)


async def test_missing_variables_are_none_in_values(templates: JinjaTemplates) -> None:
    assert await render(templates, "{{ nodes.not_run.output }}") is None
    assert await render(templates, "{{ nodes.not_run.output.deep.er }}") is None
    assert await render(templates, "{{ [missing, 1] }}") == [None, 1]


async def test_missing_variables_render_empty_in_text(templates: JinjaTemplates) -> None:
    assert await render(templates, "[{{ nodes.not_run.output.x }}]") == "[]"


async def test_dict_keys_win_over_dict_methods(templates: JinjaTemplates) -> None:
    assert await render(templates, "{{ inputs.items }}") == [1, 2, 3]


async def test_evaluate_returns_native_values(templates: JinjaTemplates) -> None:
    assert await templates.evaluate("inputs.count * 2 + 1", CONTEXT) == 7
    assert await templates.evaluate("nodes.fetch.output.status == 200", CONTEXT) is True
    assert await templates.evaluate("nodes.missing.output", CONTEXT) is None


async def test_evaluate_rejects_text_after_the_expression(templates: JinjaTemplates) -> None:
    with pytest.raises(TemplateError, match=r"^expression 'a b': chunk after expression"):
        await templates.evaluate("a b", CONTEXT)


async def test_check_template_accepts_valid_templates(templates: JinjaTemplates) -> None:
    assert templates.check_template("Hi {{ inputs.name | upper }}") is None
    assert templates.check_template("{% if x %}y{% endif %}") is None


async def test_check_template_reports_syntax_error_with_line(templates: JinjaTemplates) -> None:
    assert templates.check_template("{{ a x }}") == (
        "expected token 'end of print statement', got 'x' (line 1)"
    )
    assert templates.check_template("ok\n{% if %}") == (
        "Expected an expression, got 'end of statement block' (line 2)"
    )


async def test_check_template_reports_unknown_filter(templates: JinjaTemplates) -> None:
    assert templates.check_template("{{ a | nope }}") == "No filter named 'nope'. (line 1)"


async def test_check_expression(templates: JinjaTemplates) -> None:
    assert templates.check_expression("a == 1 and b") is None
    assert templates.check_expression("a +") == "unexpected 'end of template' (line 1)"
    assert templates.check_expression("a b") == "chunk after expression (line 1)"


async def test_render_raises_syntax_errors_as_template_error(templates: JinjaTemplates) -> None:
    with pytest.raises(TemplateError, match=r"^template '\{\{ a x \}\}': expected token"):
        await render(templates, "{{ a x }}")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 2 ** 101 }}", "exponent is above the limit of 100"),
        ("{{ (10 ** 100) ** 50 }}", "result of \\*\\* would be larger than 4096 bits"),
        ("{{ 1e300 ** 2 }}", "OverflowError: .*out of range"),
        ("{{ 'ab' * 50001 }}", "repetition with \\* would be longer than 100000 items"),
        ("{{ [0] * 100001 }}", "repetition with \\* would be longer than 100000 items"),
        ("{{ 100001 * 'a' }}", "repetition with \\* would be longer than 100000 items"),
        ("{{ (2 ** 100) ** 40 * (2 ** 100) ** 40 }}", "result of \\* would be larger"),
        ("{{ range(100001) | list }}", "range\\(\\) is larger than the limit of 100000 items"),
        ("{{ range(10 ** 30) }}", "range\\(\\) is larger than the limit"),
    ],
)
async def test_limits_refuse_runaway_computation(
    templates: JinjaTemplates, template: str, reason: str
) -> None:
    with pytest.raises(TemplateError, match=reason):
        await render(templates, template)


async def test_limits_allow_values_just_inside(templates: JinjaTemplates) -> None:
    assert await render(templates, "{{ 2 ** 100 }}") == 2**100
    assert await render(templates, "{{ ('a' * 100000) | length }}") == 100_000
    assert await render(templates, "{{ range(100000) | length }}") == 100_000


async def test_output_longer_than_limit_is_refused(templates: JinjaTemplates) -> None:
    template = "{% for i in range(100000) %}{{ 'x' * 11 }}{% endfor %}"
    with pytest.raises(TemplateError, match="output is longer than 1000000 characters"):
        await render(templates, template)


async def test_result_with_too_many_values_is_refused(templates: JinjaTemplates) -> None:
    # A 1001 x 1001 matrix that aliases one row: small in memory, huge as JSON.
    context: dict[str, object] = {"row": [0] * 1001}
    with pytest.raises(TemplateError, match="more than 1000000 values"):
        await templates.render("{{ [row] * 1001 }}", context)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ 'a' + 1 }}", "TypeError: can only concatenate str"),
        ("{{ missing() }}", "'missing' is undefined"),
        ("{% include 'other' %}", "no loader"),
    ],
)
async def test_evaluation_errors_become_template_errors(
    templates: JinjaTemplates, template: str, reason: str
) -> None:
    with pytest.raises(TemplateError, match=reason):
        await render(templates, template)


async def test_long_template_is_shortened_in_error_message(templates: JinjaTemplates) -> None:
    template = "{{ 1 / 0 }}" + "x" * 200
    with pytest.raises(TemplateError) as caught:
        await render(templates, template)
    assert str(caught.value).startswith("template '{{ 1 / 0 }}xxx")
    assert "...': ZeroDivisionError" in str(caught.value)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ().__class__.__bases__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
async def test_sandbox_blocks_unsafe_attributes(templates: JinjaTemplates, template: str) -> None:
    with pytest.raises(TemplateError, match="is unsafe"):
        await render(templates, template)


async def test_sandbox_blocks_mutation(templates: JinjaTemplates) -> None:
    with pytest.raises(TemplateError, match="'append' of 'list' object is unsafe"):
        await render(templates, "{{ inputs.items.append(4) }}")
    assert CONTEXT["inputs"] == {"name": "Ada", "count": 3, "items": [1, 2, 3], "ratio": 0.5}


async def test_fromjson_parses_json_strings(templates: JinjaTemplates) -> None:
    context: dict[str, object] = {"body": '{"a": [1, true, null]}'}
    assert await templates.render("{{ body | fromjson }}", context) == {"a": [1, True, None]}
    assert await templates.render("{{ (body | fromjson).a[0] }}", context) == 1


async def test_fromjson_reports_invalid_json(templates: JinjaTemplates) -> None:
    with pytest.raises(TemplateError, match="fromjson: invalid JSON: Expecting value"):
        await templates.render("{{ 'nope' | fromjson }}", {})
    with pytest.raises(TemplateError, match="fromjson expects a string, got int"):
        await templates.render("{{ 1 | fromjson }}", {})


async def test_tojson_is_available(templates: JinjaTemplates) -> None:
    assert await render(templates, "{{ inputs.items | tojson }}") == "[1, 2, 3]"


async def test_same_template_is_compiled_once(
    templates: JinjaTemplates, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles: list[str] = []
    compile_template = templates._compiler._compile

    def counting(text: str) -> Compiled:
        compiles.append(text)
        return compile_template(text)

    monkeypatch.setattr(templates._compiler, "_compile", counting)
    assert await render(templates, "n={{ inputs.count }}") == "n=3"
    assert await templates.render("n={{ inputs.count }}", {"inputs": {"count": 4}}) == "n=4"
    assert compiles == ["n={{ inputs.count }}"]


async def test_cache_evicts_least_recently_used(
    templates: JinjaTemplates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(template_compile, "CACHE_SIZE", 2)
    for template in ["{{ 1 }}", "{{ 2 }}", "{{ 1 }}", "{{ 3 }}"]:
        await render(templates, template)
    assert list(templates._compiler._cache) == [("template", "{{ 1 }}"), ("template", "{{ 3 }}")]
