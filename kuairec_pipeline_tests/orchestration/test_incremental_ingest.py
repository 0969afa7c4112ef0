"""Incremental ingestion through real Dagster runs (in-process ``materialize`` on a real on-disk instance): a new day
of logs becomes one partition of ``interaction_days`` without reading or rewriting the earlier days, and the
prepared tables built from the archive plus the days equal those built from the whole big_matrix.csv."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    MetadataValue,
    SkipReason,
    build_sensor_context,
    materialize,
)
from polars.testing import assert_frame_equal

from kuairec_pipeline import provenance
from kuairec_pipeline.daily_definitions import build_daily_definitions
from kuairec_pipeline.dataset.loader import daily_logs
from kuairec_pipeline.dataset.synthetic import generate_twin
from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline.orchestration import run_history
from kuairec_pipeline.orchestration.assets import daily
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.settings import DEFAULT_SEED, Settings
from kuairec_pipeline_tests.builders import kuairec_cli, pipeline_env

PREPARED = ("filtered_ratios", "user_features", "video_features")
INGEST = ("source_files", "raw_interactions", "raw_eval_interactions", "raw_users", "raw_videos")


def _day(date_value: str) -> str:
    return f"{date_value[:4]}-{date_value[4:6]}-{date_value[6:]}"


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> tuple[Path, list[str], dict[str, list[str]]]:
    """The tiny twin, its big_matrix.csv lines (header first) and the lines of its last two days by ``date``."""
    folder = tmp_path_factory.mktemp("twin")
    generate_twin(folder, "tiny", DEFAULT_SEED)
    big = next(folder.rglob("big_matrix.csv"))
    lines = big.read_text().splitlines(keepends=True)
    by_day: dict[str, list[str]] = {}
    for line in lines[1:]:
        by_day.setdefault(line.split(",")[5], []).append(line)
    last_two = sorted(by_day)[-2:]
    return folder, lines, {_day(date): by_day[date] for date in last_two}


def _home(root: Path, twin: tuple[Path, list[str], dict[str, list[str]]], held_back: bool) -> Settings:
    """A KUAIREC_HOME whose source is a copy of the twin; ``held_back``: its big_matrix.csv lacks the last two days
    (they arrive later as daily logs)."""
    folder, lines, days = twin
    source = root / "source_copy"
    shutil.copytree(folder, source)
    if held_back:
        dates = {day.replace("-", "") for day in days}
        kept = [lines[0], *(line for line in lines[1:] if line.split(",")[5] not in dates)]
        next(source.rglob("big_matrix.csv")).write_text("".join(kept))
    return Settings(home=root / "home", source=str(source), profile="tiny")


def _instance(folder: Path) -> DagsterInstance:
    """A real on-disk Dagster instance (SQLite run, event and schedule storage) in ``folder``."""
    folder.mkdir(parents=True)
    return DagsterInstance.local_temp(str(folder))


def _run_main(settings: Settings, instance: DagsterInstance, keys: tuple[str, ...]) -> None:
    defs = build_definitions(settings)
    result = materialize(list(defs.assets), resources=defs.resources, selection=list(keys), instance=instance)
    assert result.success


def _ingest_day(settings: Settings, instance: DagsterInstance, day: str, raise_on_error: bool = True):
    defs = build_daily_definitions(settings)
    return materialize(
        list(defs.assets), resources=defs.resources, partition_key=day, instance=instance, raise_on_error=raise_on_error
    )


def _drop(settings: Settings, day: str, header: str, rows: list[str]) -> Path:
    settings.new_logs_dir.mkdir(parents=True, exist_ok=True)
    path = settings.new_logs_dir / daily_logs.daily_log_name(day)
    path.write_text(header + "".join(rows))
    return path


def _partition(settings: Settings, day: str) -> Path:
    return settings.assets_dir / "interaction_days" / f"day={day}" / "part-0.parquet"


def _table(settings: Settings, key: str) -> pl.DataFrame:
    return pl.read_parquet(settings.assets_dir / f"{key}.parquet")


def _failure_text(result) -> str:
    return " ".join(str(event.step_failure_data.error) for event in result.get_step_failure_events())


def test_appending_a_day_reads_only_that_day_and_gives_the_unpartitioned_tables(tmp_path, twin) -> None:
    _, lines, days = twin
    first_day, second_day = days
    with _instance(tmp_path / "instance_full") as instance:
        whole = _home(tmp_path / "whole", twin, held_back=False)
        _run_main(whole, instance, INGEST + PREPARED)
    with _instance(tmp_path / "instance_days") as instance:
        settings = _home(tmp_path / "days", twin, held_back=True)
        first_log = _drop(settings, first_day, lines[0], days[first_day])
        _ingest_day(settings, instance, first_day)
        _run_main(settings, instance, INGEST + PREPARED)
        before = _table(settings, "filtered_ratios")
        first_file, archive = _partition(settings, first_day), settings.assets_dir / "raw_interactions.parquet"
        stamps = {path: (path.stat().st_mtime_ns, path.stat().st_ino) for path in (first_file, archive)}
        reads_before = daily_logs.LOG_READS[str(first_log)]

        second_log = _drop(settings, second_day, lines[0], days[second_day])
        _ingest_day(settings, instance, second_day)
        assert daily_logs.LOG_READS[str(first_log)] == reads_before  # the earlier day's log was not read again
        assert daily_logs.LOG_READS[str(second_log)] == 1
        _run_main(settings, instance, PREPARED)  # the prepared tables only: the archive is not ingested again
        assert {path: (path.stat().st_mtime_ns, path.stat().st_ino) for path in stamps} == stamps

        after = _table(settings, "filtered_ratios")
        assert after.height > before.height
        second_stamps = pl.read_parquet(_partition(settings, second_day))["timestamp"]
        assert after.filter(pl.col("split") != "test")["timestamp"].is_in(second_stamps.implode()).sum() > 0
        assert not before["timestamp"].is_in(second_stamps.implode()).any()
        for key in PREPARED:
            assert_frame_equal(_table(settings, key), _table(whole, key))


def test_a_bad_daily_log_names_its_row_and_loses_nothing(tmp_path, twin) -> None:
    _, lines, days = twin
    first_day, second_day = days
    with _instance(tmp_path / "instance") as instance:
        settings = _home(tmp_path / "days", twin, held_back=True)
        _drop(settings, first_day, lines[0], days[first_day])
        _ingest_day(settings, instance, first_day)
        first_file = _partition(settings, first_day)
        first_bytes, first_stamp = first_file.read_bytes(), first_file.stat().st_mtime_ns

        rows = list(days[second_day])
        fields = rows[2].rstrip("\n").split(",")
        rows[2] = ",".join([*fields[:7], "-0.5"]) + "\n"  # a negative watch ratio on data row 3
        bad = _drop(settings, second_day, lines[0], rows)
        result = _ingest_day(settings, instance, second_day, raise_on_error=False)
        assert not result.success
        message = _failure_text(result)
        assert str(bad) in message and "'watch_ratio'" in message and "row 3" in message
        assert not _partition(settings, second_day).parent.exists()  # "writes nothing": not even an empty folder

        misfiled = list(days[second_day])
        misfiled[4] = misfiled[4].replace(f",{second_day.replace('-', '')},", f",{first_day.replace('-', '')},")
        _drop(settings, second_day, lines[0], misfiled)
        result = _ingest_day(settings, instance, second_day, raise_on_error=False)
        assert not result.success
        message = _failure_text(result)
        assert "'date'" in message and "row 5" in message and f"day {second_day}" in message
        assert not _partition(settings, second_day).parent.exists()
        assert first_file.read_bytes() == first_bytes and first_file.stat().st_mtime_ns == first_stamp

        _drop(settings, first_day, lines[0], rows)  # a bad re-delivery of a stored day: its folder and file stay
        assert not _ingest_day(settings, instance, first_day, raise_on_error=False).success
        assert first_file.read_bytes() == first_bytes and first_file.stat().st_mtime_ns == first_stamp
        assert [path.name for path in first_file.parent.iterdir()] == [first_file.name]

        result = _ingest_day(settings, instance, "2020-07-06", raise_on_error=False)  # no file for that day
        assert not result.success and daily_logs.daily_log_name("2020-07-06") in _failure_text(result)
        days_folder = settings.assets_dir / "interaction_days"
        assert sorted(path.name for path in days_folder.iterdir()) == [f"day={first_day}"]


def test_a_day_already_in_the_archive_is_refused(tmp_path, twin) -> None:
    _, lines, days = twin
    first_day = next(iter(days))
    with _instance(tmp_path / "instance") as instance:
        settings = _home(tmp_path / "whole", twin, held_back=False)  # the archive already holds every day
        _drop(settings, first_day, lines[0], days[first_day])
        _ingest_day(settings, instance, first_day)
        defs = build_definitions(settings)
        result = materialize(
            list(defs.assets),
            resources=defs.resources,
            selection=[*INGEST, "filtered_ratios"],
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        message = _failure_text(result)
        assert "already in big_matrix.csv" in message and "'date'" in message
        assert not (settings.assets_dir / "filtered_ratios.parquet").exists()


def test_both_code_locations_load_and_only_the_daily_one_materializes_days(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    main, days = build_definitions(settings), build_daily_definitions(settings)
    Definitions.validate_loadable(main)
    Definitions.validate_loadable(days)
    main_graph, days_graph = main.resolve_asset_graph(), days.resolve_asset_graph()
    key = daily.INTERACTION_DAYS_SPEC.key
    # --select '*' on the main location resolves to its materializable assets: interaction_days is not one of them
    assert key in main_graph.get_all_asset_keys() and key not in main_graph.materializable_asset_keys
    assert days_graph.materializable_asset_keys == {key}
    assert main_graph.get(key).partitions_def == days_graph.get(key).partitions_def == daily.LOG_DAYS


def test_the_sensor_asks_for_each_new_or_changed_day(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    resource = KuaiRecResource.from_settings(settings)
    with build_sensor_context(resources={"kuairec": resource}) as context:
        assert isinstance(daily.new_log_days_sensor(context), SkipReason)
    header = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"
    for day in ("2020-09-06", "2020-09-07", "2020-07-01"):  # the last is before the partitions start
        _drop(settings, day, header, [])
    with build_sensor_context(resources={"kuairec": resource}) as context:
        requests = daily.new_log_days_sensor(context).run_requests
    assert [request.partition_key for request in requests] == ["2020-09-06", "2020-09-07"]
    first_key = requests[0].run_key
    _drop(settings, "2020-09-06", header, ["1,2,3,4,2020-09-06 00:00:00.000,20200906,1599321600.0,0.75\n"])
    with build_sensor_context(resources={"kuairec": resource}) as context:
        changed = daily.new_log_days_sensor(context).run_requests
    assert changed[0].run_key != first_key and changed[1].run_key == requests[1].run_key


def test_a_model_refused_after_a_day_was_withdrawn_says_what_differs(tmp_path, twin) -> None:
    """filtered_ratios re-made without one day and with the same config: ``kuairec recommend`` refuses the model
    trained on the former table, naming both fingerprints and, from the run history, the day that differs."""
    _, lines, days = twin
    first_day, second_day = days
    with _instance(tmp_path / "instance") as instance:
        settings = _home(tmp_path / "days", twin, held_back=True)
        for day in days:
            _drop(settings, day, lines[0], days[day])
            _ingest_day(settings, instance, day)
        _run_main(settings, instance, (*INGEST, *PREPARED, "training_arrays", "linear_baseline"))
        then = provenance.file_fingerprint(settings.assets_dir / "filtered_ratios.parquet")
        shutil.rmtree(_partition(settings, second_day).parent)  # how a day is withdrawn (INCREMENTAL_INGEST.md)
        _run_main(settings, instance, PREPARED)
        now = provenance.file_fingerprint(settings.assets_dir / "filtered_ratios.parquet")
    env = pipeline_env(tmp_path / "cli", KUAIREC_HOME=str(settings.home), DAGSTER_HOME=str(tmp_path / "instance"))
    answer = kuairec_cli(env, "recommend", "--user", "0", "--model", "linear")
    assert answer.returncode == 2 and answer.stdout == ""
    message = " ".join(answer.stderr.split())
    assert f"other content (fingerprint {then} then, {now} now)" in message
    assert "same config, so its rows changed" in message and message.count("max_watch_ratio") == 1
    note = message.split("What differs: ", 1)[1]
    assert provenance.APPENDED_DAYS in provenance.parquet_provenance(settings.assets_dir / "filtered_ratios.parquet")
    assert note.startswith(f"appended days of interaction_days no longer read: {second_day}.")  # the days listed


def test_the_days_two_filtered_ratios_tables_read_are_named_when_recorded(tmp_path) -> None:
    """With the list of appended days in both materializations' metadata, the days that differ are named."""
    location = str(tmp_path / "assets")
    with _instance(tmp_path / "instance") as instance:
        recorded = (("aaaa", [20200904, 20200905]), ("bbbb", [20200904, 20200906]), ("cccc", [20200905, 20200904]))
        for fingerprint, appended in recorded:
            metadata = {
                provenance.FINGERPRINT: fingerprint,
                provenance.APPENDED_DAYS: json.dumps(appended),
                "path": MetadataValue.path(f"{location}/filtered_ratios.parquet"),
            }
            instance.report_runless_asset_event(AssetMaterialization("filtered_ratios", metadata=metadata))
        note = run_history.appended_days_difference(instance, location, "aaaa", "bbbb")
        assert note == "appended days of interaction_days no longer read: 2020-09-05; read now, not then: 2020-09-06"
        assert run_history.appended_days_difference(instance, str(tmp_path / "elsewhere"), "aaaa", "bbbb") is None
        # The same days: the difference is not in them (a config change, say), so no note claims a cause.
        assert run_history.appended_days_difference(instance, location, "aaaa", "cccc") is None
