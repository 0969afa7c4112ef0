"""Model training assets, one per entry of the model registry (``models/registry.py``), all built by
:func:`model_asset`: load the inputs, build the model's config from the run config, fit (from the training data,
or from other fitted models for an entry with ``inputs``), record validation metrics and how training went, and
store the stamped NumPy bundle. What differs between models lives on the model class (``models/hooks.py``).
"""

from __future__ import annotations

import inspect

import numpy as np
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, asset

from kuairec_pipeline.evaluation.metrics import validation_metrics
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.data_store import tables_of, training_from_arrays
from kuairec_pipeline.models.registry import TRAINED_MODELS, ModelEntry
from kuairec_pipeline.orchestration.config_gen import dagster_config, to_source
from kuairec_pipeline.orchestration.lineage import require_current, stamped
from kuairec_pipeline.orchestration.metadata import rounded, training_summary
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.orchestration.versions import code_version

GROUP = "models"
NUMPY = "numpy_io_manager"
TRAINING_ARRAYS = "training_arrays"  # the asset every model trains on (orchestration/assets/arrays.py)


def _description(entry: ModelEntry) -> str:
    doc = inspect.getdoc(entry.model_class()) or entry.name
    return " ".join(doc.split("\n\n")[0].split())


def fit_entry(
    context: AssetExecutionContext,
    entry: ModelEntry,
    config: object,
    kuairec: KuaiRecResource,
    training_arrays: dict[str, np.ndarray],
    fitted_inputs: dict[str, dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Fit the model of ``entry`` and return its stamped bundle (the body of every model asset).

    Parameters
    ----------
    context : the asset's execution context (metadata, log).
    entry : the registry entry.
    config : the run's ``Config`` (generated from ``entry.config_class()``).
    kuairec : where extra files go (``models_dir``).
    training_arrays : the stored training part of the prepared data (``training_arrays`` asset).
    fitted_inputs : asset key -> bundle of each fitted model ``entry.inputs`` names.

    Returns
    -------
    dict of arrays: the bundle with its ``__trained_with__`` record.

    Raises
    ------
    provenance.StaleArtifactError
        If the arrays or a fitted input come from other tables than the latest ones.
    """
    require_current(context, {TRAINING_ARRAYS: training_arrays}, fitted_inputs)
    data = training_from_arrays(training_arrays)
    model_config = to_source(config, entry.config_class(), **entry.pipeline_settings)
    model: Recommender = entry.model_class()(model_config)
    if entry.inputs:
        components = {}
        for name in entry.inputs:
            source = TRAINED_MODELS[name]
            components[name] = source.model_class().from_bundle(fitted_inputs[source.asset_key], source.asset_key)
        model.fit_from_components(components, data, progress=context.log.info)
    else:
        model.pipeline_fit(data, context.log.info)
    _record_training(context, entry, model, kuairec, data)
    return stamped(context, model.bundle(), data, tables_of(training_arrays))


def _record_training(
    context: AssetExecutionContext, entry: ModelEntry, model: Recommender, kuairec: KuaiRecResource, data: TrainingData
) -> None:
    metadata: dict[str, object] = {}
    history = model.training_history()
    if history is not None:
        metadata.update(training_summary(entry.name, *history))
    metadata.update(model.training_metadata())
    metadata.update(model.save_extras(kuairec.settings.models_dir))
    scores = validation_metrics(model, data)
    metadata.update({f"val_{name}": rounded(value) for name, value in scores.items()})
    context.add_output_metadata(metadata)


def model_asset(entry: ModelEntry) -> AssetsDefinition:
    """The Dagster asset of a registry entry: key ``entry.asset_key``, config generated from the entry's config
    class, inputs the training arrays plus the bundles of ``entry.inputs``.

    Parameters
    ----------
    entry : the registry entry.

    Returns
    -------
    AssetsDefinition.
    """
    config_class = dagster_config(entry.config_class())
    input_keys = tuple(TRAINED_MODELS[name].asset_key for name in entry.inputs)

    # Dagster reads the inputs, the resource and the config class off the signature: spell them out per entry.
    parameters = [
        inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=AssetExecutionContext),
        inspect.Parameter("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=config_class),
        inspect.Parameter("kuairec", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=KuaiRecResource),
    ]
    for key in (*input_keys, TRAINING_ARRAYS):
        parameters.append(
            inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=dict[str, np.ndarray])
        )
    signature = inspect.Signature(parameters, return_annotation=dict[str, np.ndarray])

    def compute(*args: object, **kwargs: object) -> dict[str, np.ndarray]:
        given = signature.bind(*args, **kwargs).arguments
        fitted = {key: given[key] for key in input_keys}
        return fit_entry(given["context"], entry, given["config"], given["kuairec"], given[TRAINING_ARRAYS], fitted)

    compute.__signature__ = signature
    compute.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": dict[str, np.ndarray]}
    compute.__name__ = compute.__qualname__ = entry.asset_key
    return asset(
        name=entry.asset_key,
        group_name=GROUP,
        code_version=code_version(entry.asset_key),
        io_manager_key=NUMPY,
        kinds=set(entry.kinds),
        description=_description(entry),
        ins={key: AssetIn() for key in input_keys},
    )(compute)


MODEL_ASSETS: list[AssetsDefinition] = [model_asset(entry) for entry in TRAINED_MODELS.values()]
