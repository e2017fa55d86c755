r"""Networks: conditioner networks for flows (MLP and MADE) and the encoder and decoder networks
of autoencoders (dense for vectors, small conv nets for images)."""

from .autoencoder import ConvDecoderNet, ConvEncoderNet, decoder_net, encoder_net
from .conv import ConvResNet
from .dynamics import ODEMLP, ConcatLinear, ConcatSquashLinear
from .networks import MADE, MLP, MaskedLinear

__all__ = [
    "MLP",
    "MADE",
    "MaskedLinear",
    "ConvEncoderNet",
    "ConvDecoderNet",
    "encoder_net",
    "decoder_net",
    "ConvResNet",
    "ODEMLP",
    "ConcatLinear",
    "ConcatSquashLinear",
]
