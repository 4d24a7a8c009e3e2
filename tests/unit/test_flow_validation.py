"""IVR flow files as supervisors write them: good ones load, broken ones say where and why.

Each file in ``tests/flows/broken`` holds one realistic mistake and says what the
supervisor must be told, as leading comments::

    # expect: <line> <field path, or - for none> [text the message contains]

A broken file must be rejected with exactly those problems: no fewer (the mistake is
found, at the right line and field) and no more (no noise that hides it).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from acd.ivr.loader import FlowError, FlowSet, load_flow, load_flows, parse_flow
from acd.ivr.model import (
    Flow,
    LanguageNode,
    MenuNode,
    QueueNode,
    TransferNode,
    expression_refs,
    render_template,
    template_refs,
)
from acd.ivr.schema import flow_json_schema
from acd.ivr.validate import Problem, validate_flow

FLOWS = Path(__file__).resolve().parents[1] / "flows"
GOOD = sorted((FLOWS / "good").glob("*.yaml"))
BROKEN = sorted((FLOWS / "broken").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+) (\S+)(?: (.*))?$")


def expectations(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for line in path.read_text().splitlines():
        match = EXPECT.match(line)
        if match:
            field = "" if match[2] == "-" else match[2]
            found.append((int(match[1]), field, match[3] or ""))
    return found


def problems_of(paths: list[Path] | Path, **kwargs: object) -> list[Problem]:
    with pytest.raises(FlowError) as info:
        load_flows(paths, **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_there_are_enough_distinct_broken_flows() -> None:
    assert len(BROKEN) >= 25
    named = [p for p in BROKEN if any(field for _, field, _ in expectations(p))]
    assert len(named) >= 25
    assert all(expectations(p) for p in BROKEN), "every broken flow says what to expect"


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_flow_is_rejected_at_its_line_and_field(path: Path) -> None:
    problems = problems_of([path])
    seen = [(p.line, p.field_path) for p in problems]
    for line, field, text in expectations(path):
        matching = [p for p in problems if (p.line, p.field_path) == (line, field)]
        assert matching, f"expected a problem at line {line}, field {field!r}; got {seen}"
        if text:
            assert any(text in p.message for p in matching), [p.message for p in matching]
    assert sorted(set(seen)) == sorted({(line, f) for line, f, _ in expectations(path)}), (
        "unexpected extra problems: " + "; ".join(str(p) for p in problems)
    )
    assert all(p.file == str(path) and p.column >= 1 for p in problems)


def test_problem_renders_file_line_column_field_and_message(tmp_path: Path) -> None:
    path = FLOWS / "broken" / "unknown_node_in_menu.yaml"
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert str(info.value.problems[0]) == (
        f"{path}:11:10: nodes.main_menu.choices.2: unknown node 'sales_q' "
        "(did you mean 'sales_queue'? expected one of: main_menu, sales_queue, support_queue)"
    )
    assert "1 problem in IVR flows:" in str(info.value)


def test_all_good_flows_load_together() -> None:
    flows = load_flows(FLOWS / "good")
    assert isinstance(flows, FlowSet)
    assert len(flows) == len(GOOD)
    assert {"hotline", "billing", "reception", "pin_check"} <= set(flows)
    hotline = flows["hotline"]
    menu = hotline.nodes["main_menu"]
    assert isinstance(menu, MenuNode)
    assert dict(menu.choices) == {
        "1": "route_sales",
        "2": "support_queue",
        "3": "account",
        "0": "operator",
        "*": "welcome",
    }
    assert hotline.prompt_file("main-menu", "en") == "acme/main-menu"
    assert hotline.prompt_file("main-menu", "fr") == "acme/hauptmenue"  # the fallback


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_each_good_flow_loads_on_its_own(path: Path) -> None:
    flow = load_flow(path)
    assert flow.source is not None and flow.source.file == str(path)
    assert flow.start in flow.nodes


def test_a_file_with_several_problems_reports_all_of_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "hotline.yaml",
        """\
flow: hotline
start: welcom
schedules:
  office:
    timezone: Europe/Berln
    weekly:
      mon-fri: "08:00-18:00"
nodes:
  welcome:
    kind: play
    promt: acme/welcome
    next: main
  main:
    kind: menu
    prompt: acme/main
    choices:
      1: sales_q
      2: check
    on_failure: main
  check:
    kind: hours
    schedule: ofice
    open: main
    closed: main
  support:
    kind: queue
    queue: "{custmer.segment}"
    priority: 120
""",
    )
    problems = problems_of(path)
    assert [(p.line, p.field_path) for p in problems] == [
        (2, "start"),
        (5, "schedules.office.timezone"),
        (11, "nodes.welcome.promt"),
        (17, "nodes.main.choices.1"),
        (22, "nodes.check.schedule"),
        (28, "nodes.support.priority"),
    ]
    # Schema errors and reference errors come from one run.
    assert "did you mean 'welcome'" in problems[0].message
    assert "did you mean 'office'" in problems[4].message


def test_problems_of_every_file_are_collected(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "flow: a\nstart: x\nnodes:\n  x:\n    kind: hangup\n    cause: 16\n")
    write(tmp_path, "b.yaml", "flow: b\nstart: y\nnodes:\n  y:\n    kind: goto\n    to: z\n")
    write(tmp_path, "c.yaml", "flow: c\nstart: x\nnodes:\n  x:\n    kind: hangup\n")
    problems = problems_of(tmp_path)
    assert [(Path(p.file).name, p.line, p.field_path) for p in problems] == [
        ("a.yaml", 6, "nodes.x.cause"),
        ("b.yaml", 6, "nodes.y.to"),
    ]


def test_duplicate_flow_names_across_files(tmp_path: Path) -> None:
    text = "flow: hotline\nstart: x\nnodes:\n  x:\n    kind: hangup\n"
    write(tmp_path, "hotline.yaml", text)
    write(tmp_path, "hotline-copy.yaml", text)
    (problem,) = problems_of(tmp_path)
    assert (Path(problem.file).name, problem.line, problem.field_path) == (
        "hotline.yaml",
        1,
        "flow",
    )
    assert "also defined in" in problem.message and "hotline-copy.yaml" in problem.message


def test_subflows_calling_each_other_are_rejected(tmp_path: Path) -> None:
    for name, other in (("a", "b"), ("b", "a")):
        write(
            tmp_path,
            f"{name}.yaml",
            f"flow: {name}\nstart: call\nnodes:\n  call:\n    kind: subflow\n"
            f"    flow: {other}\n    next: done\n  done:\n    kind: return\n",
        )
    (problem,) = problems_of(tmp_path)
    assert (problem.line, problem.field_path) == (6, "nodes.call.flow")
    assert "flow 'a' ends up calling itself (a -> b -> a)" in problem.message


def test_yaml_1_2_keeps_supervisor_text_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "norway.yaml",
        """\
flow: norway
start: pick
languages: {default: "no", available: ["no", en]}
nodes:
  pick:
    kind: language
    prompt: acme/choose
    choices: {1: no, 2: en}
    next: out
  out:
    kind: transfer
    number: 004722123456
""",
    )
    flow = load_flow(path)
    assert flow.languages.default == "no"
    pick, out = flow.nodes["pick"], flow.nodes["out"]
    assert isinstance(pick, LanguageNode) and isinstance(out, TransferNode)
    assert pick.choices["1"] == "no"  # not the boolean false of YAML 1.1
    assert out.number == "004722123456"  # leading zeros kept


def test_merge_keys_share_menu_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "merge.yaml",
        """\
flow: merge
start: a
nodes:
  a: &menu
    kind: menu
    prompt: acme/a
    choices: {1: b}
    on_failure: q
  b:
    <<: *menu
    prompt: acme/b
    choices: {1: q}
  q:
    kind: queue
    queue: support
""",
    )
    flow = load_flow(path)
    b = flow.nodes["b"]
    assert isinstance(b, MenuNode)
    assert b.prompt == ("acme/b",) and b.on_failure == "q"


def test_prompts_missing_from_sounds_dir_are_named_per_language(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    for rel in ("en/acme/welcome.wav", "en/acme/menu.gsm", "de/acme/menue.ulaw"):
        (sounds / rel).parent.mkdir(parents=True, exist_ok=True)
        (sounds / rel).write_bytes(b"")
    path = write(
        tmp_path,
        "sounds.yaml",
        """\
flow: sounds
start: welcome
languages: {default: en, available: [en, de]}
prompts:
  menu: {en: acme/menu, de: acme/menue}
nodes:
  welcome:
    kind: play
    prompt: acme/welcome
    next: main
  main:
    kind: menu
    prompt: [menu, acme/missing]
    choices: {1: q}
    on_failure: q
  q:
    kind: queue
    queue: support
""",
    )
    (problem,) = problems_of(path, sounds_dir=sounds)
    assert (problem.line, problem.field_path) == (13, "nodes.main.prompt.1")
    assert f"{sounds}/en/acme/missing.{{gsm," in problem.message
    assert f"{sounds}/de/acme/missing." in problem.message
    # acme/welcome exists only in English: German callers hear the fallback, no problem.
    path.write_text(path.read_text().replace("[menu, acme/missing]", "[menu]"))
    assert load_flows(path, sounds_dir=sounds)["sounds"].start == "welcome"
    problems = problems_of(path, sounds_dir=tmp_path / "nowhere")
    assert [p.message for p in problems] == [
        f"sounds directory {tmp_path / 'nowhere'} does not exist"
    ]


def test_flows_built_in_code_are_validated_too() -> None:
    flow = Flow.model_validate(
        {
            "flow": "code",
            "start": "a",
            "nodes": {"a": {"kind": "goto", "to": "b"}, "b": {"kind": "goto", "to": "a"}},
        }
    )
    (problem,) = validate_flow(flow)
    assert problem.file == "<flow code>" and problem.field_path == "nodes.a"
    assert "calls loop forever: a -> b -> a" in problem.message


def test_syntax_error_names_line_and_column() -> None:
    parsed = parse_flow("flow: x\nnodes:\n  a:\n    kind: play\n    next: [b\n", "x.yaml")
    (problem,) = parsed.problems
    assert problem.file == "x.yaml" and problem.line == 6
    assert problem.message.startswith("YAML syntax:")


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.yaml", "# nothing yet\n")
    listing = write(tmp_path, "list.yaml", "- flow: x\n")
    messages = [p.message for p in problems_of([empty, listing])]
    assert messages == [
        "the file is empty: a flow needs flow:, start: and nodes:",
        "a flow file is a mapping: flow:, start:, nodes: ...",
    ]


def test_template_rendering() -> None:
    variables = {"customer": {"segment": "vip", "phones": ["1", "2"]}, "caller": {"number": "49"}}
    assert render_template("{customer.segment}_q", variables) == "vip_q"
    assert render_template("{customer.phones.1}/{missing.x}", variables) == "2/"
    assert render_template("{{literal}} {caller.number}", variables) == "{literal} 49"


def test_json_schema_for_editors() -> None:
    schema = flow_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "acd IVR flow"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"flow", "start", "nodes"}
    (node_schema,) = schema["properties"]["nodes"]["patternProperties"].values()
    assert set(node_schema["discriminator"]["mapping"]) >= {"play", "menu", "hangup", "return"}
    menu = schema["$defs"]["MenuNode"]
    assert "where the call goes" in menu["properties"]["on_failure"]["description"]
    assert menu["additionalProperties"] is False
    json.dumps(schema)  # serializable as it is


def test_queue_priority_from_template_or_number() -> None:
    flows = load_flows(FLOWS / "good")
    sales = flows["sales"]
    vip, standard = sales.nodes["vip_queue"], sales.nodes["sales_queue"]
    assert isinstance(vip, QueueNode) and isinstance(standard, QueueNode)
    assert vip.priority == 90 and standard.priority == "{segment}"


def test_good_schedules_are_accepted_by_the_hours_runtime() -> None:
    from acd.core import hours
    from acd.ivr.loader import flow_files

    for path in flow_files(FLOWS / "good"):
        parsed = parse_flow(path.read_text(), str(path))
        for name, raw in (parsed.data.get("schedules") or {}).items():
            hours.schedule_from_dict(raw, path=f"schedules.{name}")


def test_a_500_node_flow_loads(tmp_path: Path) -> None:
    # Its load time is a figure printed by bench/ivr_interpreter.py, not asserted here.
    path = write(tmp_path, "big.yaml", big_flow(500))
    flow = load_flow(path)
    assert len(flow.nodes) == 500
    assert flow.start == "n0"


def big_flow(count: int) -> str:
    """A flow of ``count`` nodes: chains of menus, branches, sets and plays, one exit."""
    lines = ["flow: big", "start: n0", "variables: {segment: a}", "nodes:"]
    for i in range(count - 1):
        nxt = f"n{i + 1}"
        match i % 4:
            case 0:
                lines += [
                    f"  n{i}:",
                    "    kind: menu",
                    f"    prompt: acme/menu-{i}",
                    f"    choices: {{1: {nxt}, 2: n0, '#': {nxt}}}",
                    f"    on_failure: {nxt}",
                ]
            case 1:
                lines += [
                    f"  n{i}:",
                    "    kind: branch",
                    "    cases:",
                    "      - when: '{segment}'",
                    "        equals: vip",
                    f"        then: {nxt}",
                    f"    else: {nxt}",
                ]
            case 2:
                lines += [
                    f"  n{i}:",
                    "    kind: set",
                    f"    variables: {{v{i}: '= len(segment) + {i}'}}",
                    f"    next: {nxt}",
                ]
            case _:
                lines += [
                    f"  n{i}:",
                    "    kind: play",
                    f"    prompt: acme/p{i}",
                    f"    next: {nxt}",
                ]
    lines += [f"  n{count - 1}:", "    kind: hangup"]
    return "\n".join(lines) + "\n"


def test_readme_example_is_the_good_hotline(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "ivr_flows" / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    documented = load_flow(write(tmp_path, "hotline.yaml", example))
    assert documented.model_dump() == load_flow(FLOWS / "good" / "hotline.yaml").model_dump()


def test_expressions_read_variables_and_refuse_the_rest() -> None:
    assert expression_refs("= attempts + 1") == [("attempts",)]
    assert sorted(expression_refs("= len(customer.name) if caller.number else 0")) == [
        ("caller", "number"),
        ("customer", "name"),
    ]
    for bad in ("= open('/etc/passwd')", "= x.lower()", "= [y for y in x]", "= 1 +"):
        with pytest.raises(ValueError):
            expression_refs(bad)


def test_template_syntax_errors_are_explained() -> None:
    assert template_refs("{a}-{b.c}{{x}}") == [("a",), ("b", "c")]
    with pytest.raises(ValueError, match=re.escape("unbalanced '{'")):
        template_refs("{caller.number")
    with pytest.raises(ValueError, match="is not a variable"):
        template_refs("{customer segment}")


def test_mangled_flows_give_problems_never_crash(tmp_path: Path) -> None:
    """Half-finished edits (lines lost, values garbled, indentation off) are reported."""
    rng = random.Random(3)
    texts = [p.read_text() for p in GOOD]
    garbage = ["", "x", "1", "null", "[]", "{}", "[a, b]", "-1", "'{'", "a: b", "= 1 +", "{x}"]
    path = tmp_path / "mangled.yaml"
    for _ in range(300):
        lines = rng.choice(texts).splitlines()
        for _ in range(rng.randint(1, 3)):
            j = rng.randrange(len(lines))
            match rng.randrange(3):
                case 0:
                    del lines[j]
                case 1 if ":" in lines[j]:
                    lines[j] = lines[j].partition(":")[0] + ": " + rng.choice(garbage)
                case _:
                    lines[j] = lines[j].replace("  ", " ", 1)
        path.write_text("\n".join(lines) + "\n")
        try:
            load_flow(path)
        except FlowError as exc:
            assert exc.problems
            assert all(p.line >= 1 and p.column >= 1 and p.message for p in exc.problems)
