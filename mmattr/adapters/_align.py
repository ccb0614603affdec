"""ALIGN in plain torch: the inference half of transformers' ``AlignModel``, for fast start.

Ref. Jia et al., "Scaling Up Visual and Vision-Language Representation Learning With Noisy Text
Supervision" (ALIGN), ICML 2021. Adapted from transformers' ``models/align/modeling_align.py``
(Apache License 2.0, The Google Research Team Authors and The HuggingFace Team).

Importing transformers' model code costs seconds (its package imports torch.distributed,
dynamo, scipy, torchvision, ...); this module imports torch only. Same module tree, parameter
names and operations in the same order as transformers 5's ``AlignModel`` with eager
attention, so a checkpoint folder loads with a strict state dict and gives the same
embeddings; `mmattr.adapters._native` decides when a folder qualifies (every config key read
here stated, nothing unsupported) and falls back to transformers otherwise.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

#: config keys each part reads (a folder whose config.json lacks one takes transformers' path,
#: which knows the defaults)
VISION_KEYS = ("num_channels", "hidden_act", "batch_norm_eps", "batch_norm_momentum",
               "depth_coefficient", "depth_divisor", "width_coefficient", "in_channels",
               "out_channels", "strides", "kernel_sizes", "expand_ratios", "num_block_repeats",
               "depthwise_padding", "drop_connect_rate", "squeeze_expansion_ratio",
               "pooling_type", "hidden_dim")
TEXT_KEYS = ("vocab_size", "hidden_size", "pad_token_id", "max_position_embeddings",
             "type_vocab_size", "layer_norm_eps", "num_attention_heads", "num_hidden_layers",
             "intermediate_size", "hidden_act")
TOP_KEYS = ("model_type", "projection_dim", "temperature_init_value", "text_config",
            "vision_config")
#: keys that change nothing at inference (or are checked below), tolerated beside those read
VISION_INERT = {"model_type", "initializer_range", "image_size", "num_hidden_layers",
                "transformers_version"}
TEXT_INERT = {"model_type", "initializer_range", "bos_token_id", "eos_token_id",
              "attention_probs_dropout_prob", "hidden_dropout_prob", "transformers_version"}
TOP_INERT = {"architectures", "dtype", "torch_dtype", "initializer_range", "transformers_version"}
#: activations by config name, as transformers' ACT2FN builds them
VISION_ACTS = {"swish": nn.SiLU}
class GELUActivation(nn.Module):
    """transformers' ``ACT2FN["gelu"]`` (the erf GELU), under the same class name."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(input)


TEXT_ACTS = {"gelu": GELUActivation}


class Config(SimpleNamespace):
    """A config.json as attributes (``config.vision_config.image_size``); a key it lacks reads
    as an AttributeError, so ``getattr(config, key, default)`` works as on transformers'."""

    def __init__(self, data: dict) -> None:
        super().__init__(**{k: Config(v) if k.endswith("_config") and isinstance(v, dict) else v
                            for k, v in data.items()})
        self._data = data

    def to_dict(self) -> dict:
        return dict(self._data)

    def __reduce__(self):
        # rebuilt from its data: copy.deepcopy (Quantus copies a model to randomise it) and
        # pickle would otherwise call Config() without it
        return type(self), (self._data,)


def unsupported(cfg: dict) -> str | None:
    """Why this config.json is not one `AlignModel` below reproduces; None when it is."""
    if cfg.get("model_type") != "align":
        return "not an ALIGN config"
    for key in TOP_KEYS:
        if key not in cfg:
            return f"config.json has no {key!r}"
    if set(cfg) - set(TOP_KEYS) - TOP_INERT:
        return f"config.json keys {sorted(set(cfg) - set(TOP_KEYS) - TOP_INERT)} are not read here"
    if cfg.get("dtype", cfg.get("torch_dtype")) not in (None, "float32"):
        return "not a float32 checkpoint"
    for part, keys, inert, acts in (("vision_config", VISION_KEYS, VISION_INERT, VISION_ACTS),
                                    ("text_config", TEXT_KEYS, TEXT_INERT, TEXT_ACTS)):
        sub = cfg[part]
        if not isinstance(sub, dict):
            return f"{part} is not a mapping"
        missing = [k for k in keys if k not in sub]
        if missing:
            return f"{part} does not state {missing}"
        extra = set(sub) - set(keys) - inert
        if extra:
            return f"{part} keys {sorted(extra)} are not read here"
        if sub["hidden_act"] not in acts:
            return f"{part} activation {sub['hidden_act']!r}"
    if cfg["vision_config"]["pooling_type"] not in ("mean", "max"):
        return "unknown pooling_type"
    text = cfg["text_config"]
    if text["hidden_size"] % text["num_attention_heads"]:
        return "hidden size not a multiple of the heads"
    return None


class Output(SimpleNamespace):
    """What the feature methods return: ``pooler_output`` is the embedding (transformers 5)."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor


# -- the image tower: EfficientNet ---------------------------------------------------------------

def round_filters(config: Config, num_channels: int) -> int:
    divisor = config.depth_divisor
    num_channels *= config.width_coefficient
    new_dim = max(divisor, int(num_channels + divisor / 2) // divisor * divisor)
    if new_dim < 0.9 * num_channels:
        new_dim += divisor
    return int(new_dim)


def correct_pad(kernel_size: int, adjust: bool = True) -> tuple[int, int, int, int]:
    correct = (kernel_size // 2, kernel_size // 2)
    if adjust:
        return (correct[1] - 1, correct[1], correct[0] - 1, correct[0])
    return (correct[1], correct[1], correct[0], correct[0])


class AlignVisionEmbeddings(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.out_dim = round_filters(config, 32)
        self.padding = nn.ZeroPad2d(padding=(0, 1, 0, 1))
        self.convolution = nn.Conv2d(config.num_channels, self.out_dim, kernel_size=3, stride=2,
                                     padding="valid", bias=False)
        self.batchnorm = nn.BatchNorm2d(self.out_dim, eps=config.batch_norm_eps,
                                        momentum=config.batch_norm_momentum)
        self.activation = VISION_ACTS[config.hidden_act]()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.activation(self.batchnorm(self.convolution(self.padding(pixel_values))))


class AlignVisionDepthwiseConv2d(nn.Conv2d):
    def __init__(self, in_channels: int, kernel_size: int, stride: int, padding: str,
                 bias: bool) -> None:
        super().__init__(in_channels=in_channels, out_channels=in_channels,
                         kernel_size=kernel_size, stride=stride, padding=padding,
                         groups=in_channels, bias=bias)


class AlignVisionExpansionLayer(nn.Module):
    def __init__(self, config: Config, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.expand_conv = nn.Conv2d(in_dim, out_dim, kernel_size=1, padding="same", bias=False)
        self.expand_bn = nn.BatchNorm2d(num_features=out_dim, eps=config.batch_norm_eps)
        self.expand_act = VISION_ACTS[config.hidden_act]()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.expand_act(self.expand_bn(self.expand_conv(hidden_states)))


class AlignVisionDepthwiseLayer(nn.Module):
    def __init__(self, config: Config, in_dim: int, stride: int, kernel_size: int,
                 adjust_padding: bool) -> None:
        super().__init__()
        self.stride = stride
        self.depthwise_conv_pad = nn.ZeroPad2d(padding=correct_pad(kernel_size, adjust_padding))
        self.depthwise_conv = AlignVisionDepthwiseConv2d(
            in_dim, kernel_size=kernel_size, stride=stride,
            padding="valid" if stride == 2 else "same", bias=False)
        self.depthwise_norm = nn.BatchNorm2d(num_features=in_dim, eps=config.batch_norm_eps,
                                             momentum=config.batch_norm_momentum)
        self.depthwise_act = VISION_ACTS[config.hidden_act]()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            hidden_states = self.depthwise_conv_pad(hidden_states)
        return self.depthwise_act(self.depthwise_norm(self.depthwise_conv(hidden_states)))


class AlignVisionSqueezeExciteLayer(nn.Module):
    def __init__(self, config: Config, in_dim: int, expand_dim: int, expand: bool) -> None:
        super().__init__()
        self.dim = expand_dim if expand else in_dim
        self.dim_se = max(1, int(in_dim * config.squeeze_expansion_ratio))
        self.squeeze = nn.AdaptiveAvgPool2d(output_size=1)
        self.reduce = nn.Conv2d(self.dim, self.dim_se, kernel_size=1, padding="same")
        self.expand = nn.Conv2d(self.dim_se, self.dim, kernel_size=1, padding="same")
        self.act_reduce = VISION_ACTS[config.hidden_act]()
        self.act_expand = nn.Sigmoid()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        inputs = hidden_states
        hidden_states = self.act_reduce(self.reduce(self.squeeze(hidden_states)))
        hidden_states = self.act_expand(self.expand(hidden_states))
        return torch.mul(inputs, hidden_states)


class AlignVisionFinalBlockLayer(nn.Module):
    def __init__(self, config: Config, in_dim: int, out_dim: int, stride: int, drop_rate: float,
                 id_skip: bool) -> None:
        super().__init__()
        self.apply_dropout = stride == 1 and not id_skip
        self.project_conv = nn.Conv2d(in_dim, out_dim, kernel_size=1, padding="same", bias=False)
        self.project_bn = nn.BatchNorm2d(num_features=out_dim, eps=config.batch_norm_eps,
                                         momentum=config.batch_norm_momentum)
        self.dropout = nn.Dropout(p=drop_rate)

    def forward(self, embeddings: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.project_bn(self.project_conv(hidden_states))
        if self.apply_dropout:
            hidden_states = self.dropout(hidden_states)
            hidden_states = hidden_states + embeddings
        return hidden_states


class AlignVisionBlock(nn.Module):
    def __init__(self, config: Config, in_dim: int, out_dim: int, stride: int, expand_ratio: int,
                 kernel_size: int, drop_rate: float, id_skip: bool, adjust_padding: bool) -> None:
        super().__init__()
        self.expand_ratio = expand_ratio
        self.expand = expand_ratio != 1
        expand_in_dim = in_dim * expand_ratio
        if self.expand:
            self.expansion = AlignVisionExpansionLayer(config, in_dim, expand_in_dim)
        dim = expand_in_dim if self.expand else in_dim
        self.depthwise_conv = AlignVisionDepthwiseLayer(config, dim, stride, kernel_size,
                                                        adjust_padding)
        self.squeeze_excite = AlignVisionSqueezeExciteLayer(config, in_dim, expand_in_dim,
                                                            self.expand)
        self.projection = AlignVisionFinalBlockLayer(config, dim, out_dim, stride, drop_rate,
                                                     id_skip)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        embeddings = hidden_states
        if self.expand_ratio != 1:
            hidden_states = self.expansion(hidden_states)
        hidden_states = self.depthwise_conv(hidden_states)
        hidden_states = self.squeeze_excite(hidden_states)
        return self.projection(embeddings, hidden_states)


class AlignVisionEncoder(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.depth_coefficient = config.depth_coefficient

        def round_repeats(repeats: int) -> int:
            return int(math.ceil(self.depth_coefficient * repeats))

        num_blocks = sum(round_repeats(n) for n in config.num_block_repeats)
        curr_block_num = 0
        blocks = []
        for i in range(len(config.in_channels)):
            in_dim = round_filters(config, config.in_channels[i])
            out_dim = round_filters(config, config.out_channels[i])
            stride = config.strides[i]
            for j in range(round_repeats(config.num_block_repeats[i])):
                blocks.append(AlignVisionBlock(
                    config, in_dim=out_dim if j > 0 else in_dim, out_dim=out_dim,
                    stride=1 if j > 0 else stride, expand_ratio=config.expand_ratios[i],
                    kernel_size=config.kernel_sizes[i],
                    drop_rate=config.drop_connect_rate * curr_block_num / num_blocks,
                    id_skip=j == 0, adjust_padding=curr_block_num not in config.depthwise_padding))
                curr_block_num += 1
        self.blocks = nn.ModuleList(blocks)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            hidden_states = block(hidden_states)
        return hidden_states


class AlignVisionModel(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.embeddings = AlignVisionEmbeddings(config)
        self.encoder = AlignVisionEncoder(config)
        pool = nn.AvgPool2d if config.pooling_type == "mean" else nn.MaxPool2d
        self.pooler = pool(config.hidden_dim, ceil_mode=True)

    def forward(self, pixel_values: torch.Tensor) -> Output:
        last_hidden_state = self.encoder(self.embeddings(pixel_values))
        pooled = self.pooler(last_hidden_state)
        return Output(last_hidden_state=last_hidden_state,
                      pooler_output=pooled.reshape(pooled.shape[:2]))


# -- the text tower: BERT ------------------------------------------------------------------------

def _embedding(rows: int, dim: int, padding_idx: int | None = None) -> nn.Embedding:
    """An uninitialised table (the checkpoint fills it): nn.Embedding's own init runs
    ``normal_``, which on the meta device imports torch._dynamo (seconds)."""
    return nn.Embedding(rows, dim, padding_idx=padding_idx, _weight=torch.empty(rows, dim))


class AlignTextEmbeddings(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.word_embeddings = _embedding(config.vocab_size, config.hidden_size,
                                          padding_idx=config.pad_token_id)
        self.position_embeddings = _embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = _embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", 0.0))
        self.max_positions = config.max_position_embeddings
        self.register_buffer("position_ids", None, persistent=False)
        self.register_buffer("token_type_ids", None, persistent=False)
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """The non-persistent buffers (a model built on the meta device gets them here)."""
        device = self.word_embeddings.weight.device
        device = torch.device("cpu") if device.type == "meta" else device
        self.position_ids = torch.arange(self.max_positions, device=device).expand((1, -1))
        self.token_type_ids = torch.zeros(self.position_ids.size(), dtype=torch.long,
                                          device=device)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        batch, seq_length = input_ids.shape
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = self.token_type_ids[:, :seq_length].expand(batch, seq_length)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings += self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class AlignTextSelfAttention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = int(config.hidden_size / config.num_attention_heads)
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(getattr(config, "attention_probs_dropout_prob", 0.0))
        self.scaling = self.attention_head_size ** -0.5

    def forward(self, hidden_states: torch.Tensor,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.attention_head_size)
        query = self.query(hidden_states).view(hidden_shape).transpose(1, 2)
        key = self.key(hidden_states).view(hidden_shape).transpose(1, 2)
        value = self.value(hidden_states).view(hidden_shape).transpose(1, 2)
        # transformers' eager_attention_forward
        weights = torch.matmul(query, key.transpose(2, 3)) * self.scaling
        if attention_mask is not None:
            weights = weights + attention_mask
        weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        weights = nn.functional.dropout(weights, p=self.dropout.p, training=self.training)
        out = torch.matmul(weights, value).transpose(1, 2).contiguous()
        return out.reshape(*input_shape, -1).contiguous()


class AlignTextSelfOutput(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", 0.0))

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class AlignTextAttention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.self = AlignTextSelfAttention(config)
        self.output = AlignTextSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class AlignTextIntermediate(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = TEXT_ACTS[config.hidden_act]()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class AlignTextOutput(AlignTextSelfOutput):
    def __init__(self, config: Config) -> None:
        nn.Module.__init__(self)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", 0.0))


class AlignTextLayer(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.attention = AlignTextAttention(config)
        self.intermediate = AlignTextIntermediate(config)
        self.output = AlignTextOutput(config)

    def forward(self, hidden_states: torch.Tensor,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class AlignTextEncoder(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList([AlignTextLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
        return hidden_states


class AlignTextPooler(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class AlignTextModel(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.embeddings = AlignTextEmbeddings(config)
        self.encoder = AlignTextEncoder(config)
        self.pooler = AlignTextPooler(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> Output:
        embedding_output = self.embeddings(input_ids, token_type_ids, position_ids)
        # transformers' create_bidirectional_mask for eager attention: no bias without padding,
        # else 0 where a key is attended and the dtype's minimum where it is padding
        mask = None
        if attention_mask is not None and not attention_mask.all():
            keep = attention_mask.to(device=embedding_output.device, dtype=torch.bool)
            keep = keep[:, None, None, :].expand(-1, 1, input_ids.shape[1], -1)
            mask = torch.where(keep, torch.zeros((), device=keep.device, dtype=embedding_output.dtype),
                               torch.finfo(embedding_output.dtype).min)
        sequence_output = self.encoder(embedding_output, mask)
        return Output(last_hidden_state=sequence_output,
                      pooler_output=self.pooler(sequence_output))


class AlignModel(nn.Module):
    """transformers' ``AlignModel`` for inference: ``get_image_features`` and
    ``get_text_features`` return an `Output` whose ``pooler_output`` is the embedding."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.projection_dim = config.projection_dim
        self.text_embed_dim = config.text_config.hidden_size
        self.text_model = AlignTextModel(config.text_config)
        self.vision_model = AlignVisionModel(config.vision_config)
        self.text_projection = nn.Linear(self.text_embed_dim, self.projection_dim)
        self.temperature = nn.Parameter(torch.tensor(float(config.temperature_init_value)))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          token_type_ids: torch.Tensor | None = None,
                          position_ids: torch.Tensor | None = None) -> Output:
        out = self.text_model(input_ids, attention_mask, token_type_ids, position_ids)
        out.pooler_output = self.text_projection(out.last_hidden_state[:, 0, :])
        return out

    def get_image_features(self, pixel_values: torch.Tensor) -> Output:
        return self.vision_model(pixel_values)
