// A std::vector whose storage starts on a 64-byte line (a cache line, and one zmm register).
// malloc gives 16-byte alignment: a buffer 16 bytes into a line splits every zmm load and store
// across two lines, which made the Winograd transforms up to 2x slower.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace engine {

inline constexpr std::size_t kCacheLine = 64;

// n floats rounded up to whole lines: buffers laid out one after another at these sizes, from an
// aligned start, all start on a line.
template <class Int>
constexpr Int whole_lines(Int floats) {
    constexpr Int per_line = Int(kCacheLine / sizeof(float));
    return (floats + per_line - 1) / per_line * per_line;
}

template <class T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <class U>
    CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{kCacheLine})); }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete (p, std::align_val_t{kCacheLine}); }
    template <class U>
    bool operator==(const CacheLineAllocator<U>&) const noexcept {
        return true;
    }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace engine
