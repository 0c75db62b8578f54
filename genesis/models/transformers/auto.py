"""``AutoConfig`` and ``AutoModelForCausalLM``: pick the class from ``config.json``'s
``model_type``, as HuggingFace's auto classes do (local directories and presets; no Hub)."""
import json
import os

from ... import dtypes
from .configuration_moe import CONFIG_NAME, MODEL_TYPES, MoEConfig
from .modeling_moe import MoEForCausalLM

__all__ = ["AutoConfig", "AutoModelForCausalLM", "CONFIG_MAPPING",
           "MODEL_FOR_CAUSAL_LM_MAPPING"]

CONFIG_MAPPING = {model_type: MoEConfig for model_type in MODEL_TYPES}
MODEL_FOR_CAUSAL_LM_MAPPING = {model_type: MoEForCausalLM for model_type in MODEL_TYPES}


def _model_type(pretrained_model_name_or_path, who):
    """The ``model_type`` of a checkpoint directory, a config file or a preset name."""
    path = os.fspath(pretrained_model_name_or_path)
    file = os.path.join(path, CONFIG_NAME) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        from .presets import PRESETS, get_moe_config
        if path in PRESETS:
            return get_moe_config(path).model_type
        raise FileNotFoundError(f"{who}: {path!r} is neither a directory with {CONFIG_NAME}, a "
                                f"config file, nor a preset ({sorted(PRESETS)}); genesis does "
                                "not download from the Hub")
    with open(file, encoding="utf-8") as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{who}: {file} is not valid JSON: {exc}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type is None:
        raise ValueError(f"{who}: unrecognized model in {path!r}: its {CONFIG_NAME} should have "
                         f"a `model_type` key, one of {sorted(CONFIG_MAPPING)}")
    return model_type


def _lookup(mapping, model_type, who):
    if model_type not in mapping:
        raise ValueError(f"{who}: unrecognized model_type {model_type!r}; genesis supports "
                         f"{sorted(mapping)}")
    return mapping[model_type]


class AutoConfig:
    """``AutoConfig.from_pretrained(dir)``: the config class registered for its model_type."""

    def __init__(self):
        raise EnvironmentError("AutoConfig is designed to be instantiated using "
                               "AutoConfig.from_pretrained(path) or AutoConfig.for_model(type)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, trust_remote_code=False, **kwargs):
        """Read ``config.json`` (or a preset) into the class of its ``model_type``; keyword
        arguments override fields. ``trust_remote_code`` changes nothing: genesis runs no
        code from checkpoints."""
        who = "AutoConfig.from_pretrained"
        config_cls = _lookup(CONFIG_MAPPING, _model_type(pretrained_model_name_or_path, who), who)
        return config_cls.from_pretrained(pretrained_model_name_or_path, **kwargs)

    @staticmethod
    def for_model(model_type, **kwargs):
        """A config of ``model_type`` from keyword arguments (HF field names accepted)."""
        config_cls = _lookup(CONFIG_MAPPING, model_type, "AutoConfig.for_model")
        return config_cls.from_dict({"model_type": model_type, **kwargs})

    @staticmethod
    def register(model_type, config_class, exist_ok=False):
        """Make ``from_pretrained`` build ``config_class`` for ``model_type``."""
        if model_type in CONFIG_MAPPING and not exist_ok:
            raise ValueError(f"AutoConfig.register: {model_type!r} is already registered "
                             f"(to {CONFIG_MAPPING[model_type].__name__}); pass exist_ok=True")
        CONFIG_MAPPING[model_type] = config_class


def _load_dtype(dtype, torch_dtype, who):
    if torch_dtype is not None and dtype is not None and torch_dtype != dtype:
        raise ValueError(f"{who}: got both dtype={dtype!r} and torch_dtype={torch_dtype!r}; "
                         "pass one")
    return dtype if dtype is not None else torch_dtype


class AutoModelForCausalLM:
    """``AutoModelForCausalLM.from_pretrained(dir)``: the causal-LM class of the checkpoint's
    ``model_type``, loaded with its weights; ``from_config(config)``: a fresh model."""

    def __init__(self):
        raise EnvironmentError("AutoModelForCausalLM is designed to be instantiated using "
                               "AutoModelForCausalLM.from_pretrained(path) or "
                               "AutoModelForCausalLM.from_config(config)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, *, dtype=None, torch_dtype=None,
                        trust_remote_code=False, **kwargs):
        """Load a checkpoint directory (or build a preset) with the class of its model_type.

        ``dtype``/``torch_dtype``: the dtype to load into (None: float32, "auto": the
        config's). Other keyword arguments go to the model class's ``from_pretrained``
        (config field overrides, ``check_memory``). ``trust_remote_code`` changes nothing:
        genesis runs no code from checkpoints."""
        who = "AutoModelForCausalLM.from_pretrained"
        if "config" in kwargs:
            raise TypeError(f"{who}: config= is not supported; the checkpoint's {CONFIG_NAME} "
                            "is used (pass field overrides as keyword arguments, or build with "
                            "from_config and load a state dict)")
        model_cls = _lookup(MODEL_FOR_CAUSAL_LM_MAPPING,
                            _model_type(pretrained_model_name_or_path, who), who)
        return model_cls.from_pretrained(pretrained_model_name_or_path,
                                         dtype=_load_dtype(dtype, torch_dtype, who), **kwargs)

    @staticmethod
    def from_config(config, *, dtype=None, torch_dtype=None, trust_remote_code=False,
                    **kwargs):
        """A freshly initialised model of ``config``'s model_type (in ``dtype``)."""
        who = "AutoModelForCausalLM.from_config"
        model_cls = _lookup(MODEL_FOR_CAUSAL_LM_MAPPING, getattr(config, "model_type", None),
                            who)
        with dtypes.default_dtype(_load_dtype(dtype, torch_dtype, who)):
            return model_cls(config, **kwargs)

    @staticmethod
    def register(config_class, model_class, exist_ok=False):
        """Make the auto class build ``model_class`` for ``config_class.model_type``."""
        model_type = config_class.model_type
        if model_type in MODEL_FOR_CAUSAL_LM_MAPPING and not exist_ok:
            raise ValueError(f"AutoModelForCausalLM.register: {model_type!r} is already "
                             f"registered (to {MODEL_FOR_CAUSAL_LM_MAPPING[model_type].__name__})"
                             "; pass exist_ok=True")
        MODEL_FOR_CAUSAL_LM_MAPPING[model_type] = model_class
