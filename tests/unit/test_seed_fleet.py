"""``tenantgate seed``'s pure parts: the custom-column distribution, the manifest, the
sampled custom values and the command line's refusals (no database needed)."""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

import pytest

from proxy.bench.distribution import MAX_CUSTOM_COLUMNS, CustomColumnDistribution, DistributionError
from proxy.bench.fleet import Fleet, FleetError, FleetTenant, load_fleet, write_fleet
from proxy.cli import main
from proxy.demo.seed import custom_columns, sampled_custom_values, sqlite3_value


@pytest.mark.parametrize(
    ("spec", "canonical", "mean"),
    [
        ("0-50:90%,51-800:10%", "0-50:90%,51-800:10%", 0.9 * 25 + 0.1 * 425.5),
        ("20", "20:100%", 20),
        (" 0 - 50 ", "0-50:100%", 25),
        ("5:12.5%,6-8:87.5%", "5:12.5%,6-8:87.5%", 5 * 0.125 + 7 * 0.875),
    ],
)
def test_distribution_parses_to_a_canonical_spec(spec: str, canonical: str, mean: float) -> None:
    dist = CustomColumnDistribution.parse(spec)
    assert str(dist) == canonical
    assert CustomColumnDistribution.parse(str(dist)) == dist
    assert dist.mean == pytest.approx(mean)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "empty item"),
        ("0-50:90%,", "empty item"),
        ("ten", "cannot read 'ten'"),
        ("0-50:90", "cannot read"),
        ("50-10", "runs backwards"),
        (f"0-{MAX_CUSTOM_COLUMNS + 1}", "1,024 columns"),
        ("0-50:90%,51-800:20%", "add up to 110%"),
        ("0-50:90%,51-800", "give each a weight"),
        ("0-50:0%,1:100%", "weighs 0%"),
    ],
)
def test_distribution_refuses_bad_specs(spec: str, says: str) -> None:
    with pytest.raises(DistributionError, match=says):
        CustomColumnDistribution.parse(spec)


def test_counts_follow_the_weights_and_depend_only_on_seed_and_tenant() -> None:
    dist = CustomColumnDistribution.parse("0-50:90%,51-800:10%")
    counts = [dist.count_for(cid, seed=7) for cid in range(1, 3001)]
    assert all(0 <= n <= 800 for n in counts)
    tail = sum(n > 50 for n in counts) / len(counts)
    assert 0.07 < tail < 0.13
    assert len(set(counts)) > 100  # uniform within the ranges, not a few values
    # Per tenant, whatever else is drawn: a resumed or grown fleet gets the same counts.
    assert [dist.count_for(cid, seed=7) for cid in (3000, 17, 1)] == [
        counts[2999],
        counts[16],
        counts[0],
    ]
    assert [dist.count_for(cid, seed=8) for cid in range(1, 3001)] != counts


def _fleet(tenants: int, complete: bool) -> Fleet:
    return Fleet(
        fleet_id="ab" * 16,
        backend="postgresql",
        layout="schema",
        controller_connection_string="Driver=SQLite3;Database=/x/controller.db",
        controller_table="Customer",
        tenants=tuple(
            FleetTenant(
                customer_id=i,
                domain=f"t{i:05d}.fleet.example",
                connection_string=f"Driver={{PostgreSQL Unicode}};Pwd={{s3cret}};Schema=t{i}",
                custom_columns=i * 3,
                contacts=100,
                accounts=20,
                opportunities=50,
            )
            for i in range(1, tenants + 1)
        ),
        complete=complete,
        parameters={"tenants": tenants, "seed": 4, "custom_columns": "0-50:100%"},
    )


def test_manifest_round_trips_privately_and_atomically(tmp_path: Path) -> None:
    write_fleet(tmp_path, _fleet(2, complete=False))
    fleet = _fleet(3, complete=True)
    write_fleet(tmp_path, fleet)
    assert load_fleet(tmp_path) == fleet
    assert load_fleet(tmp_path / "fleet.json").tenants[2].custom_columns == 9
    assert stat.S_IMODE(os.stat(tmp_path / "fleet.json").st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.json"]  # no temp files left
    assert "s3cret" not in repr(fleet)


def test_manifest_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="run tenantgate seed"):
        load_fleet(tmp_path)
    (tmp_path / "fleet.json").write_text('{"format": 99}', encoding="utf-8")
    with pytest.raises(FleetError, match="unsupported format 99"):
        load_fleet(tmp_path)


def test_sampled_custom_values_are_typed_deterministic_and_varied() -> None:
    custom = custom_columns(40, seed=5)
    rows = sampled_custom_values("Contacts", 500, seed=3, custom=custom)
    assert len(rows) == 500
    assert all(len(r) == 40 for r in rows)
    assert rows == sampled_custom_values("Contacts", 500, seed=3, custom=custom)
    assert rows != sampled_custom_values("Contacts", 500, seed=4, custom=custom)
    columns = list(zip(*rows, strict=True))
    nulls = sum(c.count(None) for c in columns) / (500 * 40)
    assert 0.15 < nulls < 0.35  # custom fields are sparse: a quarter NULL
    assert max(len(Counter(c)) for c in columns) >= 40  # numbers, dates: 50-100 distinct
    assert len({c for c in columns}) == 40  # no two columns alike
    adapted = sampled_custom_values("Contacts", 50, seed=3, custom=custom, adapt=sqlite3_value)
    assert all(v is None or isinstance(v, int | str | float) for r in adapted for v in r)
    assert sampled_custom_values("Contacts", 3, seed=3, custom=()) == [(), (), ()]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--backend", "sqlite", "--custom-columns", "0-50:90%"], "add up to 90%"),
        (["--backend", "postgresql"], "--server or --server-env"),
        (["--backend", "sqlite", "--layout", "schema"], "does not apply to sqlite"),
        (["--backend", "sqlite", "--tenants", "0"], "--tenants must be"),
        (["--backend", "sqlite", "--prefix", "Bad-Name"], "--prefix must be"),
        (["--backend", "sqlite", "--controller-on-server"], "needs a server"),
        (["--server-env", "TG_SEED_TEST_UNSET_VAR"], "TG_SEED_TEST_UNSET_VAR is not set"),
    ],
)
def test_cli_refuses_bad_options_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["seed", "--dir", str(tmp_path / "fleet"), *args]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "fleet" / "fleet.json").exists()


def test_cli_refuses_a_folder_that_is_not_a_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "controller.db").write_bytes(b"someone else's")
    assert main(["seed", "--dir", str(tmp_path), "--backend", "sqlite", "--tenants", "1"]) == 2
    assert "not a fleet tenantgate seed made" in capsys.readouterr().err
    assert (tmp_path / "controller.db").read_bytes() == b"someone else's"
    assert main(["seed", "--dir", str(tmp_path / "nothing"), "--drop"]) == 2
    assert "nothing to drop" in capsys.readouterr().err
