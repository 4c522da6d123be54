"""OnnxEncoderClassifier: the fine-tuned encoder as an int8 ONNX Runtime graph, the head
as trained.

On the CPU this answers messages about five times faster than the torch float32 model
and loses no measurable accuracy: on Banking77's 3,080 test messages per-channel int8
in ONNX Runtime scored 0.06 points below float32 (95 % interval −0.33 to +0.21), where
torch's own dynamic int8 lost 0.78 (docs/benchmarks.md, "Encoder serving on the CPU").
ONNX Runtime also quantizes the token embedding table, which torch's int8 keeps in
float32, so the graph is a quarter of the float32 weights. Those figures were measured
with 8-bit weights on a CPU with AVX-512 VNNI; weights are now 7-bit (see
:func:`export_int8_graph`), which CPUs without VNNI need, not yet measured on Banking77
with MiniLM (the bot's model answers its 320 test messages identically either way).

Only the encoder and its mean pooling are exported; the linear head stays a float32
torch layer, so calibrated confidences keep their resolution (the temperature is fitted
on this model's logits, not the float32 one's).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
from torch import nn

from rasa_llm.errors import RasaLLMError
from rasa_llm.models.encoder_classifier import EncoderClassifier, mean_pool

# Inside a component's directory in the trained model, beside encoder/ and the head.
GRAPH_FILE = "encoder.int8.onnx"
# The TorchScript exporter supports opset 17 for every torch this project allows, and
# ONNX Runtime 1.17+ runs it.
OPSET = 17


class OnnxServingError(RasaLLMError):
    """The encoder could not be exported to, quantized for or run by ONNX Runtime."""


# What ONNX Runtime's quantizer logs on the root logger, seen wherever the root logger
# shows INFO (`python -m training` exports a graph after every run): advice to run its
# shape pre-processing first, which helps static quantization, not this dynamic one (the
# accuracy was measured without it), and a line for each tensor and attention MatMul it
# leaves in float32 (dozens for MiniLM), which is what dynamic quantization means to do.
_QUANTIZER_NOISE = (
    "Please consider to run pre-processing",
    "Quantization parameters for tensor",
    "Ignore MatMul due to non constant B",
)


def _no_preprocessing_advice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_QUANTIZER_NOISE)


class _Pooler(nn.Module):
    """The part that is exported: encoder and mean pooling, no head."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(self.encoder, input_ids, attention_mask)


def export_int8_graph(model: EncoderClassifier) -> bytes:
    """The encoder and its pooling as a per-channel dynamic-int8 ONNX graph."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise OnnxServingError(
            f"ONNX Runtime is not installed ({e}). Fix: pip install 'onnxruntime<1.24' "
            "'onnx<1.18' (rasa-llm's own dependencies), or set quantize: none"
        ) from e
    pooler = _Pooler(model.encoder).cpu().eval()
    # Any ids will do for tracing; the padded second row makes the mask matter.
    input_ids = torch.ones((2, 8), dtype=torch.long)
    attention_mask = torch.ones((2, 8), dtype=torch.long)
    attention_mask[1, 5:] = 0
    with tempfile.TemporaryDirectory(prefix="rasa-llm-onnx-") as tmp:
        float32, int8 = Path(tmp) / "encoder.onnx", Path(tmp) / GRAPH_FILE
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # Tracer and exporter warnings are about code paths of other shapes;
                # dynamic_axes keeps batch and sequence free.
                warnings.simplefilter("ignore")
                # The TorchScript exporter, not dynamo: with the onnx that Rasa's
                # protobuf pin allows, the dynamo graph fails ONNX Runtime's shape
                # inference during quantization, and it exports 20 times slower.
                torch.onnx.export(
                    pooler,
                    (input_ids, attention_mask),
                    str(float32),
                    input_names=["input_ids", "attention_mask"],
                    output_names=["pooled"],
                    dynamic_axes={
                        "input_ids": {0: "batch", 1: "sequence"},
                        "attention_mask": {0: "batch", 1: "sequence"},
                        "pooled": {0: "batch"},
                    },
                    opset_version=OPSET,
                    dynamo=False,
                )
                # One scale per output channel: one per matrix cost 0.23 points more on
                # Banking77 (docs/decisions/encoder-serving-onnx-int8.md). Weights in 7
                # bits (reduce_range; docs/decisions/int8-7-bit-weights.md):
                # on CPUs without VNNI (AVX2 only) ONNX Runtime multiplies uint8 by int8
                # in pairs summed into int16, which 8-bit weights overflow. There an
                # all-mpnet-base-v2 graph agreed with float32 on 1.1 % of Banking77's
                # validation texts with 8 bits and on 97.6 % with 7; 7-bit products
                # cannot overflow, so a graph answers alike on every CPU, and the
                # agreement measured where it was trained holds where it is served.
                logging.getLogger().addFilter(_no_preprocessing_advice)
                try:
                    quantize_dynamic(
                        str(float32),
                        str(int8),
                        weight_type=QuantType.QInt8,
                        per_channel=True,
                        reduce_range=True,
                    )
                finally:
                    logging.getLogger().removeFilter(_no_preprocessing_advice)
        except Exception as e:  # exporter and quantizer raise many types
            raise OnnxServingError(
                f"could not export {type(model.encoder).__name__} to an int8 ONNX graph "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
                "Fix: set quantize: none in config.yml to serve the float32 torch model"
            ) from e
        return int8.read_bytes()


class OnnxEncoderClassifier(nn.Module):
    """Answers like :class:`EncoderClassifier` (pooled vectors, logits), via ONNX Runtime."""

    def __init__(self, graph: bytes, head: nn.Linear, threads: int) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise OnnxServingError(
                f"ONNX Runtime is not installed ({e}). Fix: pip install 'onnxruntime<1.24', "
                "or set quantize: none"
            ) from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Its threads spin after each call by default, taking a core that another
        # Rasa worker on the host needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime's own exception types for a bad graph
            raise OnnxServingError(
                f"ONNX Runtime cannot read the stored encoder graph ({type(e).__name__}). "
                f"Fix: delete {GRAPH_FILE} from the model or run 'rasa train --force'"
            ) from e
        self.graph = graph
        # A float32 copy on the CPU: the session answers there whatever the trained
        # model's device.
        self.head = nn.Linear(head.in_features, head.out_features)
        weights = {k: v.detach().cpu().float() for k, v in head.state_dict().items()}
        self.head.load_state_dict(weights)
        self.head.eval()

    @property
    def hidden_size(self) -> int:
        """The width of the graph's sentence vectors (the head's input)."""
        return int(self.head.in_features)

    @torch.no_grad()
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the graph: logits and sentence vectors, as ``EncoderClassifier`` returns them."""
        feed = {
            "input_ids": input_ids.cpu().numpy().astype(np.int64),
            "attention_mask": attention_mask.cpu().numpy().astype(np.int64),
        }
        pooled = torch.from_numpy(np.asarray(self.session.run(["pooled"], feed)[0]))
        return pooled, self.head(pooled)
