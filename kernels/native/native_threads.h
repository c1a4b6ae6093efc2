// The native backend's threads, set up once at load so that inference creates none.
#pragma once

namespace engine::native {

// For the calling thread: starts its OpenMP team of `threads`, flushes denormals (FTZ and DAZ) on
// every member and, unless the user chose an OpenMP binding, pins worker i to the i-th CPU the
// caller may run on (wrapping). The caller's own CPU mask is left alone. Does nothing when this
// thread was already prepared for as many threads, so it is cheap enough to call on every forward.
void threads_prepare(int threads);

}  // namespace engine::native
