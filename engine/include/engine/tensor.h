// Float32 tensors in NCHW order. A Tensor owns its storage; a TensorView borrows it,
// which is what kernels see (the executor hands out views into its arena).
#pragma once
#include "engine/api.h"
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace engine {

struct ENGINE_API Shape {
    static constexpr int kMaxRank = 6;
    int rank = 0;
    int64_t dims[kMaxRank] = {};

    Shape() = default;
    Shape(std::initializer_list<int64_t> d);
    explicit Shape(const std::vector<int64_t>& d);

    int64_t operator[](int i) const { return dims[i]; }
    int64_t& operator[](int i) { return dims[i]; }
    int64_t numel() const;
    std::vector<int64_t> vec() const { return {dims, dims + rank}; }
    std::string str() const;  // "[1,3,32,32]"
    bool operator==(const Shape& o) const;
    bool operator!=(const Shape& o) const { return !(*this == o); }
};

// "[1,3,32,32]": any list of dimensions, negative or longer than a Shape holds (for messages).
ENGINE_API std::string dims_str(const std::vector<int64_t>& dims);

struct ENGINE_API TensorView {
    float* data = nullptr;
    Shape shape;
    int64_t numel() const { return shape.numel(); }
    float& operator[](int64_t i) const { return data[i]; }
};

class ENGINE_API Tensor {
public:
    Tensor() = default;
    explicit Tensor(Shape shape, float fill = 0.0f);
    Tensor(Shape shape, std::vector<float> values);

    const Shape& shape() const { return shape_; }
    int64_t numel() const { return shape_.numel(); }
    float* data() { return values_.data(); }
    const float* data() const { return values_.data(); }
    float& operator[](int64_t i) { return values_[i]; }
    float operator[](int64_t i) const { return values_[i]; }
    std::vector<float>& values() { return values_; }
    const std::vector<float>& values() const { return values_; }
    TensorView view() { return {values_.data(), shape_}; }
    // Same data, new shape of equal element count.
    void reshape(Shape shape);
    bool empty() const { return values_.empty(); }

private:
    Shape shape_;
    std::vector<float> values_;
};

// Norm-wise relative error max|a-b| / max|b| (infinite when NaNs disagree): the error
// measure used by tests and checks, robust to elements that happen to be near zero.
ENGINE_API double relative_error(const float* a, const float* b, int64_t n);

}  // namespace engine
