// The column matrix of a convolution (one group of one sample) and its adjoint.
#pragma once
#include "native_conv_dims.h"

namespace engine::native {

// col[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][ih][iw], zero where the window reads padding.
void im2col(const Attrs& a, const ConvDims& d, const float* x, float* col);
// The adjoint of im2col: adds every column entry back to the input element it came from.
void col2im_add(const Attrs& a, const ConvDims& d, const float* col, float* gx);

}  // namespace engine::native
