"""Multilevel regression and poststratification (MRP) to census tables or census margins.

The survey's shares are shares of the sample; MRP predicts each population cell's answers
from the fitted multilevel model and weights the cells by their population share. A census
that gives only margins (sex, age, region, education separately) has no joint cell counts:
the joint table is then built by raking the sample's own joint distribution of the
poststratification variables to the census margins, which keeps the sample's associations
between those variables and the census's marginal totals (synthetic, or marginal,
poststratification: Leemann and Wasserfallen 2017). Raking is done by ``weightipy``'s RIM
algorithm on the respondents; the raked weights summed per cell are the synthetic table.

The spec's ``[poststrat]`` table names the census file and, per census variable, the
survey column it comes from (a codebook grouping factor, whose levels are the census
categories, or a covariate with a ``map`` from its codes to census categories)::

    [poststrat]
    census = "data/census/china2020.toml"
    [poststrat.variables]
    sex = { column = "female", map = { "0" = "male", "1" = "female" } }
    region = { column = "region" }

``weight = "<column>"`` in the same table adds, for comparison, each item's share weighted
by the file's survey weights (:func:`weighted_shares`).

Within a cell, covariates the model has but the census does not name sit at their sample
mean, group effects not poststratified at their average (zero), and the unit-normal
residual of the latent trait is integrated out by Gauss-Hermite quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from scsurvey.core import dims
from scsurvey.core.defaults import DRAWS
from scsurvey.core.tomlfile import check_keys, read_toml
from scsurvey.inputs.survey import SurveyData
from scsurvey.model import predictor
from scsurvey.model.likelihood import category_probs
from scsurvey.posterior.draws import posterior_draws, residual_quadrature
from scsurvey.posterior.population import MRP_FILE, load, summary_table

UNITS = ("percent", "per_100k", "count")
QUADRATURE_NODES = 20


class MRPError(ValueError):
    """A census table, a poststratification setting or its data that cannot be used."""


@dataclass(frozen=True)
class Census:
    """Census margins, each normalised to proportions over its listed categories."""

    path: str
    title: str
    source: str
    caveat: str
    margins: dict  # variable -> pandas.Series of proportions (sum 1)
    joint: pd.DataFrame | None = None  # joint cell counts: a column per variable and "count"


@dataclass(frozen=True)
class Variable:
    """One poststratification variable: the census's name and where the survey has it."""

    census: str
    column: str  # a codebook group id or covariate id
    kind: str  # "group" or "covariate"
    mapping: dict | None = None  # covariate code (as text) -> census category


def read_census(path: Path | str) -> Census:
    """Read a census margins file (TOML) and check it.

    Margins in ``percent`` or ``per_100k`` are normalised over their listed categories (a
    margin may leave categories out, such as children in a survey of adults). Margins in
    ``count`` must all sum to the same total.

    Raises
    ------
    MRPError
        Naming the file, the margin and the offending values.
    """
    path = Path(path)
    raw = read_toml(path, MRPError, "census file")
    check_keys(raw, ("title", "source", "caveat", "margins", "joint"), str(path), MRPError)
    joint = _joint_table(path, raw["joint"]) if "joint" in raw else None
    if joint is not None and not raw.get("margins"):
        names = [c for c in joint.columns if c != "count"]
        raw["margins"] = {
            n: {"unit": "count", "values": joint.groupby(n)["count"].sum().to_dict()} for n in names
        }
    if not raw.get("margins"):
        raise MRPError(f"{path}: no [margins.<variable>] tables and no [joint] table")
    margins, totals = {}, {}
    for var, m in raw["margins"].items():
        where = f"{path}: margins.{var}"
        check_keys(m, ("unit", "values", "source", "note"), where, MRPError)
        unit = m.get("unit")
        if unit not in UNITS:
            raise MRPError(f"{where}.unit = {unit!r}: expected one of {', '.join(UNITS)}")
        values = m.get("values")
        if not isinstance(values, dict) or len(values) < 2:
            raise MRPError(f"{where}.values: expected a table of at least two categories and their figures")
        bad = {
            k: v for k, v in values.items() if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0
        }
        if bad:
            raise MRPError(f"{where}.values: not positive numbers: {bad}")
        series = pd.Series({str(k): float(v) for k, v in values.items()}, name=var)
        if unit == "count":
            totals[var] = series.sum()
        margins[var] = series / series.sum()
    if totals and max(totals.values()) - min(totals.values()) > 1e-6 * max(totals.values()):
        listed = ", ".join(f"{k} {v:,.0f}" for k, v in totals.items())
        raise MRPError(f"{path}: count margins do not sum to the same total: {listed}")
    return Census(
        path=str(path),
        title=str(raw.get("title", path.stem)),
        source=str(raw.get("source", "")),
        caveat=str(raw.get("caveat", "")),
        margins=margins,
        joint=joint,
    )


def _joint_table(path: Path, spec) -> pd.DataFrame:
    """``[joint] file = "cells.csv"``: one row per population cell, a column per variable and
    ``count``; the path is relative to the census file."""
    check_keys(spec, ("file", "source"), f"{path}: joint", MRPError, "joint.")
    if "file" not in spec:
        raise MRPError(f"{path}: joint.file: the CSV of cell counts is missing")
    csv = path.parent / spec["file"]
    if not csv.is_file():
        raise MRPError(f"{path}: joint.file {csv}: file not found")
    table = pd.read_csv(csv, dtype=str)
    if "count" not in table.columns or len(table.columns) < 2:
        raise MRPError(f"{csv}: needs a column per variable and a 'count' column (has {list(table.columns)})")
    table["count"] = pd.to_numeric(table["count"], errors="coerce")
    bad = table[~(table["count"] > 0)]
    if len(bad):
        raise MRPError(f"{csv}: column 'count': not positive numbers in rows {list(bad.index[:5] + 2)}")
    names = [c for c in table.columns if c != "count"]
    dup = table.duplicated(names, keep=False)
    if dup.any():
        raise MRPError(f"{csv}: cells listed twice: rows {list(table.index[dup][:5] + 2)}")
    return table


def weighted_shares(data: SurveyData, column: str, z: float = 1.645) -> pd.DataFrame:
    """Support per item weighted by the file's survey weights: the comparison beside MRP.

    The Hájek estimator ``sum(w s) / sum(w)`` over each item's answers, which is the
    pseudo-maximum-likelihood estimate of the item's support share under the design
    weights, with its linearised standard error ``sqrt(sum(w^2 (s - p)^2)) / sum(w)`` and a
    normal interval. It corrects for selection only as far as the weights do.

    Raises
    ------
    MRPError
        The weight column missing, or weights that are missing, not numbers or not positive
        (naming the file, the column and the rows' ids).
    """
    table = data.table
    if column not in table.columns:
        raise MRPError(f"{data.source}: no weight column {column!r} (poststrat.weight)")
    w = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        ids = list(data.respondent_ids[bad][:5])
        raise MRPError(
            f"{data.source}: column {column!r}: {int(bad.sum())} weights missing, not numbers or not "
            f"positive (respondents {ids}{', ...' if bad.sum() > 5 else ''})"
        )
    support = np.asarray(data.codebook.scale.support_mask)
    y = data.responses
    rows = []
    for j, item in enumerate(data.codebook.items):
        ok = y[:, j] >= 0
        s_ = support[y[ok, j]].astype(float)
        wj = w[ok]
        p = float(np.sum(wj * s_) / wj.sum())
        se = float(np.sqrt(np.sum(wj**2 * (s_ - p) ** 2)) / wj.sum())
        rows.append(
            {
                "item": item.id,
                "weighted": p,
                "weighted_low": p - z * se,
                "weighted_high": p + z * se,
                "effective_n": float(wj.sum() ** 2 / np.sum(wj**2)),
            }
        )
    return pd.DataFrame(rows).set_index("item")


def variables(setting: dict, codebook, where: str) -> list[Variable]:
    """The poststratification variables of a spec's ``[poststrat]`` table."""
    check_keys(setting, ("census", "variables", "weight"), where, MRPError, "poststrat.")
    table = setting.get("variables") or {}
    if not table:
        raise MRPError(f"{where}: poststrat.variables names no variable")
    groups = {g.id for g in codebook.groups}
    covariates = {c.id for c in codebook.covariates}
    out = []
    for name, v in table.items():
        key = f"poststrat.variables.{name}"
        check_keys(v, ("column", "map"), where, MRPError, f"{key}.")
        column = v.get("column")
        if column in groups:
            kind = "group"
        elif column in covariates:
            kind = "covariate"
            if not isinstance(v.get("map"), dict):
                raise MRPError(
                    f"{where}: {key}.map: a covariate needs a map from its codes to census categories"
                )
        else:
            raise MRPError(
                f"{where}: {key}.column = {column!r}: not a grouping factor or covariate of the codebook "
                f"(groups: {', '.join(sorted(groups))}; covariates: {', '.join(sorted(covariates))})"
            )
        mapping = {str(k): str(c) for k, c in v["map"].items()} if v.get("map") else None
        out.append(Variable(census=name, column=column, kind=kind, mapping=mapping))
    return out


def check_model(variables_: list[Variable], groups: tuple, covariates, where: str) -> None:
    """Every poststratification variable must be in the model, or MRP would ignore it."""
    for v in variables_:
        inside = v.column in groups if v.kind == "group" else v.column in covariates
        if not inside:
            fix = "components.groups" if v.kind == "group" else "components.covariates"
            raise MRPError(
                f"{where}: poststratification variable {v.census!r} (column {v.column!r}) is not in the "
                f"model; add {v.column!r} to {fix}"
            )


def respondent_cells(data: SurveyData, variables_: list[Variable], census: Census) -> pd.DataFrame:
    """Each respondent's census category of every poststratification variable.

    Raises
    ------
    MRPError
        A variable the census does not have; a survey value that maps to no census category
        (naming the column and the values); a census category no respondent falls in
        (naming the census file, the variable and the category).
    """
    cb = data.codebook
    out = {}
    for v in variables_:
        if v.census not in census.margins:
            raise MRPError(
                f"{census.path}: no margin for poststratification variable {v.census!r} "
                f"(margins: {', '.join(census.margins)})"
            )
        categories = list(census.margins[v.census].index)
        if v.kind == "group":
            levels = np.asarray(cb.group(v.column).levels, dtype=object).astype(str)
            values = pd.Series(levels[data.groups[v.column]])
            mapped = values
            unmapped = sorted(set(values) - set(categories))
            column = cb.group(v.column).column
        else:
            column = cb.covariate(v.column).column
            raw = data.table[column].reset_index(drop=True)
            values = raw.map(
                lambda x: str(int(x)) if isinstance(x, float) and float(x).is_integer() else str(x)
            )
            mapped = values.map(v.mapping)
            unmapped = sorted(set(values[mapped.isna()]))
            mapped = mapped.astype(object)
        if unmapped:
            raise MRPError(
                f"{data.source}: column {column!r} (poststratification variable {v.census!r}) has values "
                f"that map to no census category: {unmapped} (census categories: {categories})"
            )
        empty = [c for c in categories if not (mapped == c).any()]
        if empty:
            raise MRPError(
                f"{census.path}: margins.{v.census}: no respondent falls in census categor"
                f"{'y' if len(empty) == 1 else 'ies'} {empty}; MRP cannot predict a cell the sample never saw"
            )
        out[v.census] = mapped.to_numpy()
    return pd.DataFrame(out)


def synthetic_table(cells: pd.DataFrame, census: Census) -> pd.DataFrame:
    """The joint population table from margins: the sample's joint distribution raked to them.

    Returns
    -------
    pandas.DataFrame
        One row per cell the sample holds: the poststratification variables, ``sample``
        (respondents) and ``share`` (population share, summing to one).
    """
    import weightipy as wp

    names = list(cells.columns)
    targets = {n: (100.0 * census.margins[n]).to_dict() for n in names}
    frame = cells.astype(str).copy()
    weighted = wp.weight_dataframe(df=frame, scheme=wp.scheme_from_dict(targets), weight_column="weight")
    table = weighted.groupby(names, observed=True).agg(sample=("weight", "size"), share=("weight", "sum"))
    table["share"] = table["share"] / table["share"].sum()
    for n in names:  # raking that did not reach a margin is not a population table
        reached = table.groupby(level=n)["share"].sum()
        gap = float((reached - census.margins[n].reindex(reached.index)).abs().max())
        if gap > 1e-3:
            raise MRPError(f"{census.path}: raking did not reach margin {n!r} (off by {gap:.4f})")
    return table.reset_index()


def joint_table(census: Census, cells: pd.DataFrame) -> pd.DataFrame:
    """The census's joint cell counts as shares, with the sample's count per cell.

    Every cell is kept, those the sample never saw included: the model predicts them.

    Raises
    ------
    MRPError
        A variable the joint table lacks, or a category in it the margins do not list.
    """
    joint = census.joint
    names = list(cells.columns)
    missing = [n for n in names if n not in joint.columns]
    if missing:
        raise MRPError(f"{census.path}: the joint table has no column for {missing}")
    table = joint.groupby(names, as_index=False)["count"].sum()
    for n in names:
        unknown = sorted(set(table[n]) - set(census.margins[n].index))
        if unknown:
            raise MRPError(
                f"{census.path}: joint table, variable {n!r}: categories {unknown} are not in its margin"
            )
    seen = cells.astype(str).value_counts().rename("sample").reset_index()
    table = table.merge(seen, on=names, how="left").fillna({"sample": 0})
    table["sample"] = table["sample"].astype(int)
    table["share"] = table["count"] / table["count"].sum()
    return table.drop(columns=["count"])


def estimate(
    idata,
    codebook,
    table: pd.DataFrame,
    variables_: list[Variable],
    max_draws: int = DRAWS.checks,
    seed: int = 0,
) -> xr.Dataset:
    """Population support per item and battery index, from a posterior and a cell table.

    Parameters
    ----------
    idata : arviz.InferenceData
        A stored fit whose model has every poststratification variable.
    codebook : Codebook
    table : pandas.DataFrame
        Cells with the poststratification variables and ``share`` (:func:`synthetic_table`,
        or joint census counts normalised to shares).
    variables_ : list of Variable
    max_draws : int
        Posterior draws used (evenly spaced).

    Returns
    -------
    xarray.Dataset
        ``support`` (sample, item), ``index`` (sample, battery: expected mean answer code),
        ``cell_support`` (sample, cell, item), ``cell_share`` (cell), and per category of each
        group variable ``support_by_<variable>`` (sample, <variable>, item).
    """
    post = idata.posterior
    if "dif" in post:
        raise MRPError(
            "this fit has components.dif; its cells would need each group's DIF, which MRP does "
            "not predict: poststratify the same model without DIF"
        )
    n = post.sizes["chain"] * post.sizes["draw"]
    draws = np.unique(np.linspace(0, n - 1, min(n, max_draws)).round().astype(int))
    batteries = list(post[dims.BATTERY].values)
    b_of_item = idata.constant_data["battery_of_item"].values
    mean = _cell_means(idata, table, variables_, draws, len(batteries))  # (s, cell, battery)
    cs, cc = _cell_predictions(idata, mean, draws, np.array([batteries.index(b) for b in b_of_item]))
    share = table["share"].to_numpy()
    items = post[dims.ITEM].values
    out = xr.Dataset(
        {
            "support": ((dims.STACKED, dims.ITEM), np.einsum("scj,c->sj", cs, share)),
            "cell_support": ((dims.STACKED, "cell", dims.ITEM), cs),
            "cell_share": (("cell",), share),
        },
        coords={dims.ITEM: items, "cell": np.arange(len(table))},
    )
    code = np.einsum("scj,c->sj", cc, share)
    out["index"] = (
        (dims.STACKED, dims.BATTERY),
        np.stack([code[:, b_of_item == b].mean(axis=1) for b in batteries], axis=1),
    )
    out = out.assign_coords({dims.BATTERY: batteries})
    for v in variables_:
        cats = list(pd.unique(table[v.census]))
        by = []
        for c in cats:
            inside = (table[v.census] == c).to_numpy()
            by.append(np.einsum("scj,c->sj", cs[:, inside], share[inside] / share[inside].sum()))
        out[f"support_by_{v.census}"] = ((dims.STACKED, v.census, dims.ITEM), np.stack(by, axis=1))
        out = out.assign_coords({v.census: [str(c) for c in cats]})
    for v in variables_:
        out[f"cell_{v.census}"] = (("cell",), table[v.census].astype(str).to_numpy())
    out.attrs["method"] = (
        "MRP: cell predictions from the posterior, residual integrated out, weighted by the "
        "population share of each cell"
    )
    return out


def _covariate_values(idata, table: pd.DataFrame, variables_: list[Variable], names: list[str]) -> np.ndarray:
    """Each cell's standardised covariate values (cell, covariate), at the mean (0) for the
    covariates that are not poststratified."""
    center = idata.constant_data["covariate_center"].to_series()
    scale = idata.constant_data["covariate_scale"].to_series()
    x = np.zeros((len(table), len(names)))
    for v in variables_:
        if v.kind != "covariate":
            continue
        if v.column not in names:
            raise MRPError(
                f"poststratification variable {v.census!r}: covariate {v.column!r} is not one "
                "coefficient of the model (a categorical covariate enters as dummies); "
                "poststratify on it as a grouping factor instead"
            )
        reverse = {c: k for k, c in v.mapping.items()}
        codes = table[v.census].map(reverse)
        try:
            raw = codes.astype(float).to_numpy()
        except ValueError:
            bad = sorted({str(c) for c in codes if not _is_number(c)})
            raise MRPError(
                f"poststratification variable {v.census!r}: map code {bad[0]!r} of covariate "
                f"{v.column!r} is not a number"
            ) from None
        x[:, names.index(v.column)] = (raw - center[v.column]) / scale[v.column]
    return x


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _cell_means(idata, table: pd.DataFrame, variables_: list[Variable], draws, n_batteries: int):
    """The covariate and group part of each cell's traits (sample, cell, battery)."""
    beta = x = None
    if "beta" in idata.posterior:
        da = posterior_draws(idata, "beta")
        x = _covariate_values(idata, table, variables_, list(da[dims.COVARIATE].values))
        beta = da.values[draws]
    groups = []
    for v in variables_:
        if v.kind == "group":
            u = posterior_draws(idata, f"u_{v.column}")
            levels = pd.Index(u[v.column].values)
            index = levels.get_indexer(table[v.census])
            if (index < 0).any():
                unknown = sorted(set(table[v.census][index < 0].astype(str)))
                raise MRPError(
                    f"poststratification variable {v.census!r}: cells {unknown} are not levels of "
                    f"grouping factor {v.column!r} in the fit"
                )
            groups.append((u.values[draws], index))
    mean = predictor.trait_mean(len(table), n_batteries, beta, x, groups)
    return np.repeat(mean, len(draws), axis=0) if mean.shape[0] != len(draws) else mean


CELL_BLOCK = 16  # cells predicted at once: draws x cells x nodes x items x categories in memory


def _cell_predictions(idata, mean: np.ndarray, draws, col: np.ndarray):
    """Each cell's expected support share and mean answer code per item, the residual
    integrated out by quadrature: two arrays (sample, cell, item)."""
    nodes, weights = residual_quadrature(idata, QUADRATURE_NODES)
    lam = posterior_draws(idata, "lambda").values[draws]  # (s, item)
    cuts = posterior_draws(idata, "cuts").values[draws]  # (s, item, threshold)
    support = idata.constant_data["support"].values.astype(bool)
    codes = idata.constant_data["category_code"].values.astype(float)
    link = idata.posterior.attrs.get("link", "logit")
    shares, means = [], []
    for start in range(0, mean.shape[1], CELL_BLOCK):
        block = mean[:, start : start + CELL_BLOCK]  # (s, c, battery)
        latent = block[:, :, None, :] + nodes[None, None, :, None]  # (s, c, node, battery)
        s, c, k, b = latent.shape
        eta = predictor.eta(lam, latent.reshape(s, c * k, b), col).reshape(s, c, k, -1)
        p = category_probs(eta, cuts[:, None, None], link)  # (s, c, node, item, K)
        p = np.einsum("scnjk,n->scjk", p, weights)
        shares.append(p[..., support].sum(-1))
        means.append(p @ codes)
    return np.concatenate(shares, axis=1), np.concatenate(means, axis=1)


def poststratify(
    data: SurveyData, spec_path: Path | str, root: Path | str, idata, codebook, spec
) -> xr.Dataset:
    """MRP estimates of a fitted model from its spec's ``[poststrat]`` table.

    Returns the :func:`estimate` dataset with the census title, source, caveat and the
    synthetic table's construction in its attributes.
    """
    where = str(spec_path)
    raw = read_toml(Path(spec_path), MRPError, "spec")
    if "poststrat" not in raw:
        raise MRPError(f"{where}: no [poststrat] table; MRP needs a census file and the variables")
    setting = raw["poststrat"]
    vars_ = variables(setting, codebook, where)
    comp = spec.components
    model_covariates = (
        [c.id for c in codebook.covariates] if comp.covariates is True else list(comp.covariates or ())
    )
    check_model(vars_, comp.groups, model_covariates, where)
    if "census" not in setting:
        raise MRPError(f"{where}: poststrat.census: the census margins file is missing")
    census = read_census(Path(root) / setting["census"])
    cells = respondent_cells(data, vars_, census)
    if census.joint is not None:
        table = joint_table(census, cells)
        method = f"the census's joint cell counts ({len(table)} cells)"
    else:
        table = synthetic_table(cells, census)
        method = "synthetic: the sample's joint distribution raked to the census margins (weightipy RIM)"
    out = estimate(idata, codebook, table, vars_)
    out["cell_sample"] = (("cell",), table["sample"].to_numpy())
    if setting.get("weight"):
        weighted = weighted_shares(data, setting["weight"]).reindex(out[dims.ITEM].values)
        for col in ("weighted", "weighted_low", "weighted_high"):
            out[col] = ((dims.ITEM,), weighted[col].to_numpy())
        out.attrs["weight_column"] = setting["weight"]
    out.attrs.update(
        census=census.title,
        census_source=census.source,
        caveat=census.caveat,
        table=method,
    )
    return out


def run(name: str, root: Path | str = ".") -> tuple[Path, pd.DataFrame]:
    """Poststratify model ``name``'s stored posterior and write ``models/<name>/mrp.nc``.

    Returns
    -------
    path : Path
        The file written (atomically; a failure leaves any earlier file in place).
    table : pandas.DataFrame
        Per item: sample share, MRP estimate with its 90% interval, published share.
    """
    from scsurvey.core.paths import model_paths
    from scsurvey.model.spec import load_inputs, load_spec
    from scsurvey.posterior.draws import HIGH, LOW
    from scsurvey.storage.reader import load_posterior

    root = Path(root)
    paths = model_paths(name, root)
    spec = load_spec(paths["spec"])
    data = load_inputs(spec, root)
    idata = load_posterior(name, root)
    out = poststratify(data, paths["spec"], root, idata, data.codebook, spec)
    out.attrs["posterior_created_at"] = str(idata.posterior.attrs.get("created_at", ""))
    target = paths["posterior"].with_name(MRP_FILE)
    tmp = target.with_name(f".{MRP_FILE}.tmp")
    out.to_netcdf(tmp, engine="h5netcdf")
    tmp.replace(target)
    return target, summary_table(out, idata, data.codebook, LOW, HIGH)


__all__ = [
    "Census",
    "MRPError",
    "Variable",
    "estimate",
    "joint_table",
    "load",
    "poststratify",
    "read_census",
    "respondent_cells",
    "run",
    "summary_table",
    "synthetic_table",
    "variables",
    "weighted_shares",
]
