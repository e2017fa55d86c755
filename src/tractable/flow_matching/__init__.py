r"""Flow matching: continuous normalizing flows trained by regressing a velocity field.

Conditional flow matching (Lipman et al. 2023), rectified flow (Liu et al. 2023) and minibatch
optimal-transport couplings (Tong et al. 2024); sampling and exact likelihoods through the ODE
with :mod:`tractable.continuous`' CNF machinery.
"""

from .builders import build_flow_matching, run_defaults
from .couplings import ot_coupling, ot_permutation
from .model import COUPLINGS, FlowMatching, NoiseToDataField, reflow_pairs

__all__ = [
    "COUPLINGS",
    "FlowMatching",
    "NoiseToDataField",
    "build_flow_matching",
    "ot_coupling",
    "ot_permutation",
    "reflow_pairs",
    "run_defaults",
]
