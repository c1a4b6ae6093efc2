#include "engine/tensor.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace engine {

void fail(const std::string& message) { throw Error(message); }

Shape::Shape(std::initializer_list<int64_t> d) : Shape(std::vector<int64_t>(d)) {}

Shape::Shape(const std::vector<int64_t>& d) {
    check(d.size() <= kMaxRank, "tensor rank " + std::to_string(d.size()) + " exceeds the maximum of 6");
    rank = static_cast<int>(d.size());
    for (int i = 0; i < rank; ++i) {
        check(d[i] >= 0, "negative tensor dimension " + std::to_string(d[i]));
        dims[i] = d[i];
    }
}

int64_t Shape::numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
}

std::string dims_str(const std::vector<int64_t>& dims) {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
    return s + "]";
}

std::string Shape::str() const { return dims_str(vec()); }

bool Shape::operator==(const Shape& o) const { return rank == o.rank && std::equal(dims, dims + rank, o.dims); }

Tensor::Tensor(Shape shape, float fill) : shape_(shape), values_(static_cast<size_t>(shape.numel()), fill) {}

Tensor::Tensor(Shape shape, std::vector<float> values) : shape_(shape), values_(std::move(values)) {
    check(static_cast<int64_t>(values_.size()) == shape_.numel(),
          "tensor of shape " + shape_.str() + " given " + std::to_string(values_.size()) + " values");
}

void Tensor::reshape(Shape shape) {
    check(shape.numel() == numel(), "cannot reshape " + shape_.str() + " to " + shape.str());
    shape_ = shape;
}

double relative_error(const float* a, const float* b, int64_t n) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(a[i]) || std::isnan(b[i])) {
            if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
            continue;
        }
        diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
        scale = std::max(scale, std::fabs(double(b[i])));
    }
    return diff == 0 ? 0 : diff / std::max(scale, 1e-30);
}

}  // namespace engine
