"""Checks used by every test cell of Session 10.

Each failed check raises ``CheckFailure`` with four parts: what was expected, what was got, where
(which element or dimension) and a hint at the likely mistake. The package holds no answers: hidden
tests pass their expected values in, and convolution references are computed by PyTorch at check
time (``references``).

Every check takes what is checked (a value, or a function and the inputs it is called on), then what
it should be, then the name the message uses; everything else is a keyword: ``atol``/``rtol``,
``hint``, ``mistakes``, ``padding`` before ``stride``, ``device``.

What the notebooks use, by topic:

* failures (``failures``): ``CheckFailure``, ``check``, ``check_true``, ``NOT_WRITTEN``;
* plain values (``basic``): ``check_type``, ``check_scalar``, ``check_shape``, ``check_dtype``, ``check_array``,
  ``check_array_with_mistakes``, ``check_raises``, ``check_value_error``, ``to_numpy``;
* answers worked out by hand (``answers``): ``check_hand_value``, ``check_entry``, ``check_int_sequence``,
  ``check_sizes``, ``check_choice``, ``check_function_values``, ``check_counts``;
* inputs, devices, tolerances and references (``references``): ``rng``, ``NUMPY``, ``compute_device``,
  ``tolerance``, ``conv_atol``, ``precision_of``, ``conv2d_reference``, ``_batch_reference``;
* a student's single-channel convolution (``single_channel``, ``diagnoses``, ``library``): ``check_conv2d``,
  ``call_conv``, ``check_conv_property``, ``map_of``, ``at_valid_position``, ``at_value_mistake``,
  ``check_true_convolution``,
  ``diagnose_conv2d``, ``fit_check_mistake``,
  ``check_no_library_conv``;
* a student's batched convolution (``batched``, ``batch_diagnoses``, ``library``): ``check_conv2d_batch``,
  ``diagnose_conv2d_batch``, ``check_no_library_conv_batch``;
* what every convolution keeps besides its values (``contract``): ``check_contract``;
* the convolution as one matrix (``matrix``): ``conv_matrix_mistake``;
* the conv2d_padded that 08 and 09 take from 07, its flip charged in 07 only (``pasted``):
  ``check_pasted_conv2d``, ``carried_reference``, ``flips_kernel``, ``FLIP_NOTICE``;
* going further, the backward pass (``backward``, ``library``): ``check_conv2d_backward``,
  ``check_numerical_gradient``, ``check_no_library_conv_backward``;
* PyTorch layers (``layers``): ``check_conv_layer``, ``check_conv_weight``, ``check_channels``.

The grader and the GPU check replace a few names on this package (``hooks``): ``GRADING_SEED``,
``_reject_library_conv``, ``_left_by_call``, ``_torch_conv`` and ``tolerance``; every check reads them when
it runs.
"""
from . import hooks  # noqa: F401 - first: the submodules below read the package through it
from .answers import (check_choice, check_counts, check_entry, check_function_values, check_hand_value,
                      check_int_sequence, check_sizes)
from .backward import check_conv2d_backward, check_numerical_gradient
from .basic import (check_array, check_array_with_mistakes, check_dtype, check_raises, check_scalar, check_shape,
                    check_type, check_value_error, to_numpy)
from .batch_diagnoses import diagnose_conv2d_batch
from .batched import check_conv2d_batch
from .calls import _left_by_call  # noqa: F401 - hook
from .contract import check_contract
from .single_channel import (at_valid_position, at_value_mistake, call_conv, check_conv2d, check_conv_property,
                             check_true_convolution, map_of)
from .diagnoses import diagnose_conv2d, fit_check_mistake
from .failures import NOT_WRITTEN, CheckFailure, call_student, check, check_true
from .layers import check_channels, check_conv_layer, check_conv_weight
from .matrix import conv_matrix_mistake
from .pasted import FLIP_NOTICE, carried_reference, check_pasted_conv2d, flips_kernel
from .library import (_reject_library_conv, check_no_library_conv, check_no_library_conv_backward,  # noqa: F401
                      check_no_library_conv_batch)
from .references import (NUMPY, _batch_reference, _torch_conv, compute_device, conv2d_reference,  # noqa: F401 - hook
                         conv_atol, precision_of, rng, tolerance)

GRADING_SEED = None  # set by the grader: a test's random inputs then differ for every student and course

__all__ = [
    "CheckFailure", "check", "check_true", "NOT_WRITTEN", "call_student",
    "check_type", "check_scalar", "check_shape", "check_dtype",
    "check_array", "check_array_with_mistakes", "check_raises",
    "check_value_error", "to_numpy",
    "check_hand_value", "check_entry", "check_int_sequence", "check_sizes", "check_choice", "check_function_values",
    "check_counts",
    "rng", "NUMPY", "compute_device", "tolerance", "conv_atol", "precision_of", "conv2d_reference",
    "_batch_reference",
    "check_conv2d", "call_conv", "check_conv_property", "map_of", "at_valid_position", "at_value_mistake",
    "check_true_convolution",
    "diagnose_conv2d", "fit_check_mistake",
    "check_no_library_conv",
    "check_conv2d_batch", "diagnose_conv2d_batch", "check_no_library_conv_batch",
    "check_contract", "conv_matrix_mistake",
    "check_conv2d_backward", "check_numerical_gradient", "check_no_library_conv_backward",
    "check_pasted_conv2d", "carried_reference", "flips_kernel", "FLIP_NOTICE",
    "check_conv_layer", "check_conv_weight", "check_channels",
]
