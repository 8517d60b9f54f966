"""`serve --watch`: a changed scenario file is served; a broken one keeps the previous version and is reported."""

from __future__ import annotations

from emulator.config import Settings
from emulator.server.runtime import Runtime
from emulator.server.watch import ScenarioFilter, reload

RULE = "rules:\n  - name: ping\n    when: {{last_user: ping}}\n    reply: {{content: {answer}}}\n"


def test_reload_keeps_control_api_scenarios_after_the_files(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(RULE.format(answer="file"))
    runtime = Runtime.from_settings(Settings(scenarios=[path]))
    from emulator.scenarios import parse_scenario

    added = parse_scenario("rules: [{name: extra, when: {last_user: x}, reply: {content: y}}]", "api", "api")
    runtime.replace_scenarios([*runtime.engine.scenarios, added])
    path.write_text(RULE.format(answer="changed"))
    assert reload(runtime)
    assert [s.name for s in runtime.engine.scenarios] == ["a", "api"]
    assert runtime.scenario_status.from_files == 1 and runtime.scenario_status.reloads == 1
    path.write_text("rules: [")
    assert not reload(runtime)
    assert runtime.scenario_status.last_error and [s.name for s in runtime.engine.scenarios] == ["a", "api"]


def test_filter_takes_the_named_files_and_yaml_in_folders(tmp_path):
    file = tmp_path / "one.yaml"
    file.write_text("")
    folder = tmp_path / "dir"
    folder.mkdir()
    accepts = ScenarioFilter([file, folder])
    assert accepts(None, str(file))
    assert accepts(None, str(folder / "new.yml"))
    assert not accepts(None, str(folder / "notes.txt"))
    assert not accepts(None, str(tmp_path / "other.yaml"))
