"""Security regressions for issue 9 (High 2, High 5): every template render is bounded in time,
steps and size DURING rendering, runs off the event loop when it can loop or call, and stops
when its caller is cancelled (a node timeout)."""

from __future__ import annotations

import asyncio

import pytest

from cadenza.application.ports import TemplateError
from cadenza.domain.json import JSON
from cadenza.infrastructure.templating import JinjaTemplates, TemplateLimits

# Hours of work without a budget: a render of it can only end by a limit or a cancellation.
ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
BIG = "'x' * 100000"  # the largest string * may build


def _templates(
    time_ms: int = 600_000, max_steps: int = 1_000_000, threads: int = 2
) -> JinjaTemplates:
    return JinjaTemplates(TemplateLimits(time_ms=time_ms, max_steps=max_steps, threads=threads))


async def _refused(templates: JinjaTemplates, template: str) -> str:
    with pytest.raises(TemplateError) as caught:
        await templates.render(template, {})
    return str(caught.value)


# ---- the probe's templates ----------------------------------------------------------------------
async def test_nested_loops_stop_at_the_step_budget() -> None:
    probe = "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}"
    message = await _refused(_templates(), probe)
    assert message == f"template {probe[:57] + '...'!r}: exceeded the step budget of 1000000 steps"


async def test_endless_loops_stop_at_the_time_budget() -> None:
    message = await _refused(_templates(time_ms=50, max_steps=10**12), ENDLESS)
    assert message.endswith(": exceeded the time budget of 50 ms")


async def test_lipsum_is_bounded_before_it_generates() -> None:
    message = await _refused(_templates(), "{{ lipsum(n=6000)|length }}")
    assert message == (
        "template '{{ lipsum(n=6000)|length }}': lipsum() may produce at most 10000 words (n * max)"
    )


async def test_ljust_is_refused_before_it_allocates() -> None:
    message = await _refused(_templates(), "{{ 'x'.ljust(10**8)|length }}")
    assert message == (
        "template \"{{ 'x'.ljust(10**8)|length }}\": "
        "ljust() would be longer than 1000000 characters"
    )


# ---- amplification: refused before the allocation -------------------------------------------
@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 'x'.rjust(10**8) }}", "rjust() would be longer than 1000000 characters"),
        ("{{ 'x'.center(10**8) }}", "center() would be longer than 1000000 characters"),
        ("{{ '1'.zfill(10**8) }}", "zfill() would be longer than 1000000 characters"),
        ("{{ 'x'.encode().ljust(10**8) }}", "ljust() would be longer than 1000000 characters"),
        (
            "{{ ('\\t' * 1000).expandtabs(100000) }}",
            "expandtabs() would be longer than 1000000 characters",
        ),
        (
            "{{ ('x' * 1000).replace('', 'y' * 2000) }}",
            "replace() would be longer than 1000000 characters",
        ),
        (
            f"{{{{ ({BIG}).join(range(100)|map('string')) }}}}",
            "join() would be longer than 1000000 characters",
        ),
        (
            "{{ ('x' * 1000).translate({120: 'y' * 10000}) }}",
            "translate() would be longer than 1000000 characters",
        ),
        (
            "{{ '{:>100000000}'.format(1) }}",
            "a format width would be longer than 1000000 characters",
        ),
        (
            f"{{{{ ('{{0}}' * 1000).format({BIG}) }}}}",
            "str.format() would be longer than 1000000 characters",
        ),
        ("{{ '%100000000d' % 1 }}", "% formatting would be longer than 1000000 characters"),
        ("{{ '%*d' % (100000000, 1) }}", "'*' widths are not allowed in % formatting"),
        (
            f"{{{{ ('%(a)s' * 1000) % {{'a': {BIG}}} }}}}",
            "% formatting would be longer than 1000000 characters",
        ),
        ("{{ 'x'|center(10**8) }}", "center would be longer than 1000000 characters"),
        ("{{ ('x\\n' * 50000)|indent(100) }}", "indent would be longer than 1000000 characters"),
        (
            "{{ ('x ' * 50000)|wordwrap(1, wrapstring='y' * 100) }}",
            "wordwrap would be longer than 1000000 characters",
        ),
        (
            "{{ ('x' * 1000)|replace('', 'y' * 2000) }}",
            "replace would be longer than 1000000 characters",
        ),
        ("{{ '%100000000d'|format(1) }}", "% formatting would be longer than 1000000 characters"),
        (f"{{{{ range(100)|join({BIG}) }}}}", "join would be longer than 1000000 characters"),
        ("{{ [1]|batch(10**8, 0)|list }}", "batch count would be longer than 1000000 characters"),
        ("{{ [1]|slice(10**8)|list }}", "slice count would be longer than 1000000 characters"),
        (
            f"{{{{ [{BIG}] * 100 }}}}",
            "repetition with * would be larger than 4000000 characters and items",
        ),
        (
            f"{{{{ {{}}.fromkeys(range(100), {BIG}) }}}}",
            "a value would be larger than 4000000 characters and items",
        ),
        ("{{ (1).to_bytes(10**8, 'big') }}", "to_bytes() would be longer than 1000000 characters"),
        (
            "{{ (range(100000)|list) + [1] }}",
            "+ would build a list of more than 100000 items",
        ),
        (
            f"{{{{ ({BIG} ~ {BIG})|list|length }}}}",
            "a list or mapping would have more than 100000 items",
        ),
        (  # textwrap copies the rest of a long word at every break: quadratic
            "{{ ('x' * 40000)|wordwrap(1) }}",
            "wordwrap works on at most 100000 characters or items",
        ),
        (
            f"{{{{ ({BIG} ~ 'x')|urlize }}}}",
            "urlize works on at most 100000 characters or items",
        ),
        ("{{ [[1]]|tojson(indent=100) }}", "tojson indent is above the limit of 8"),
    ],
)
async def test_amplifying_operations_are_refused(template: str, reason: str) -> None:
    message = await _refused(_templates(), template)
    assert message.endswith(f": {reason}"), message


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (  # + doubling a string held in a namespace
            f"{{% set ns = namespace(s={BIG}) %}}"
            "{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "+ would build a string longer than 1000000 characters",
        ),
        (  # ~ doubling
            f"{{% set ns = namespace(s={BIG}) %}}"
            "{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "~ would be longer than 1000000 characters",
        ),
        (  # a list that aliases itself: 2^100 items when written out, from 100 small lists
            "{% set ns = namespace(x=[1]) %}"
            "{% for i in range(100) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x|length }}",
            "a value would be larger than 4000000 characters and items",
        ),
        (  # list + list doubling, by items
            "{% set ns = namespace(x=range(1000)|list) %}"
            "{% for i in range(30) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
            "+ would build a list of more than 100000 items",
        ),
        (  # list + list doubling, by size
            f"{{% set ns = namespace(x=[{BIG}]) %}}"
            "{% for i in range(30) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
            "+ would build a value larger than 4000000 characters and items",
        ),
        (  # output accumulated in a block, which the streaming output cap never sees
            f"{{% set ns = namespace(s={BIG}) %}}"
            "{% set out %}{% for i in range(200) %}{{ ns.s }}{% endfor %}{% endset %}"
            "{{ out|length }}",
            "produced more than 10000000 characters of text",
        ),
        (  # filter blocks write their result without finalize
            "{% set out %}{% for i in range(1000) %}"
            "{% filter center(500000) %}x{% endfilter %}{% endfor %}{% endset %}",
            "produced more than 10000000 characters of text",
        ),
        (  # so do call blocks; the macro's own text is not inside the loop
            "{% macro m() %}" + "x" * 50_000 + "{{ caller() }}{% endmacro %}"
            "{% set out %}{% for i in range(1000) %}{% call m() %}{% endcall %}{% endfor %}"
            "{% endset %}",
            "produced more than 10000000 characters of text",
        ),
        (  # plain text repeated by a loop inside a block
            "{% set out %}{% for i in range(100000) %}" + "x" * 200 + "{% endfor %}{% endset %}",
            "produced more than 10000000 characters of text",
        ),
    ],
)
async def test_doubling_in_loops_is_refused(template: str, reason: str) -> None:
    message = await _refused(_templates(), template)
    assert message.endswith(f": {reason}"), message


@pytest.mark.parametrize(
    "template",
    [  # one filter call over 100,000 items: each item counts, so the time budget holds
        "{{ (range(100000)|list)|map(attribute='real')|list|length }}",
        "{{ (range(100000)|list)|sort(attribute='real')|length }}",
        "{{ (range(100000)|list)|unique(attribute='real')|list|length }}",
    ],
)
async def test_per_item_work_inside_one_filter_counts_steps(template: str) -> None:
    message = await _refused(_templates(max_steps=50_000), template)
    assert message.endswith(": exceeded the step budget of 50000 steps"), message


async def test_expressions_have_the_same_budget() -> None:
    templates = _templates(max_steps=100_000)
    with pytest.raises(TemplateError, match=r"exceeded the step budget of 100000 steps$"):
        await templates.evaluate("range(100000)|map('string')|map('string')|list|length", {})


# ---- off the event loop, and stopped by cancellation -----------------------------------------
async def _until_running(templates: JinjaTemplates) -> None:
    while templates.running == 0:
        await asyncio.sleep(0.001)


async def test_event_loop_keeps_running_while_a_template_runs() -> None:
    templates = _templates(threads=1)
    render = asyncio.create_task(templates.render(ENDLESS, {}))
    await _until_running(templates)
    turns = 0
    for _ in range(100):  # the loop goes round while the render holds its thread
        await asyncio.sleep(0)
        turns += 1
    assert (turns, templates.running, render.done()) == (100, 1, False)
    render.cancel()
    with pytest.raises(asyncio.CancelledError):
        await render
    templates.close()


async def test_cancelling_the_caller_stops_the_render_thread() -> None:
    templates = _templates(threads=1)
    render = asyncio.create_task(templates.render({"a": ENDLESS}, {}))
    await _until_running(templates)
    render.cancel()
    with pytest.raises(asyncio.CancelledError):
        await render
    # Cancellation returns only once the thread has stopped: nothing runs, and the pool's only
    # thread is free for the next render.
    assert templates.running == 0
    assert await templates.render("{% for i in range(3) %}{{ i }}{% endfor %}", {}) == "012"
    templates.close()


async def test_node_timeout_shorter_than_the_budget_stops_the_render() -> None:
    templates = _templates(max_steps=10**12, threads=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):  # what the worker does with a node's timeout
            await templates.render(ENDLESS, {})
    assert templates.running == 0
    templates.close()


@pytest.mark.parametrize(
    ("template", "inline"),
    [
        ("{{ inputs.x }}", True),
        ("{{ nodes.a.output.text }}", True),
        ("x={{ inputs['x'] }} t={{ nodes.a.output.text }}", True),
        ("{{ inputs.x is defined and inputs.x > 0 }}", True),
        ("{% if inputs.x == 1 %}one{% else %}other{% endif %}", True),
        ("{{ inputs | tojson }}", True),
        ("{{ inputs.y | default('none') }}", True),
        ("{% for i in range(2) %}{{ i }}{% endfor %}", False),
        ("{{ inputs.x == nodes.a.output.text }}", False),  # two looked-up values
        ("{{ nodes.a.output.text.upper() }}", False),  # a call
        ("{{ inputs.x + 1 }}", False),  # an operator
        ("{{ [inputs.x] | join(',') }}", False),  # a filter with a count-like cost
        ("{{ inputs.y | default(inputs.x) }}", False),  # a looked-up filter argument
    ],
)
async def test_only_templates_that_cannot_loop_or_call_render_inline(
    template: str, inline: bool
) -> None:
    templates = _templates()
    context = {"inputs": {"x": 1}, "nodes": {"a": {"output": {"text": "t"}}}}
    turns: list[str] = []
    asyncio.get_running_loop().call_soon(turns.append, "turn")  # the loop's very next turn
    await templates.render(template, context)
    # Inline, the render ends before the loop takes another turn; on a thread, the loop goes
    # on while it waits (the result needs several turns to come back from the thread).
    assert turns == ([] if inline else ["turn"])
    templates.close()


async def test_a_queued_render_starts_its_clock_when_it_starts() -> None:
    templates = _templates(time_ms=200, max_steps=10**12, threads=1)
    first = asyncio.create_task(templates.render(ENDLESS, {}))
    await _until_running(templates)
    # Queued behind the first render for its whole 200 ms: its own 200 ms start afterwards.
    second = asyncio.create_task(templates.render("{% for i in range(20) %}{% endfor %}ok", {}))
    with pytest.raises(TemplateError, match=r"exceeded the time budget of 200 ms$"):
        await first
    assert await second == "ok"
    templates.close()


async def test_normal_templates_are_unchanged_by_the_budget() -> None:
    templates = _templates(time_ms=200, max_steps=1_000_000)
    context = {"inputs": {"items": [{"n": 1}, {"n": 2}], "name": "Ada"}}
    value: JSON = {
        "list": "{% for item in inputs['items'] %}{{ item.n }},{% endfor %}",
        "joined": "{{ inputs['items'] | map(attribute='n') | join('+') }}",
        "concat": "{{ 'hi ' ~ inputs.name ~ '!' }}",
        "fmt": "{{ '%s=%d' % ('n', 3) }} {{ '{:>5}'.format('x') }}",
        "native": "{{ [1, 2] + [3] }}",
        "macro": "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}{{ m(2) }}",
    }
    assert await templates.render(value, context) == {
        "list": "1,2,",
        "joined": "1+2",
        "concat": "hi Ada!",
        "fmt": "n=3     x",
        "native": [1, 2, 3],
        "macro": "<1><2>",
    }
    templates.close()
