// ENGINE_API marks what libengine.so exports: the library is built with hidden visibility, so
// everything else stays internal to it. Static linking sees every symbol either way.
#pragma once
#if defined(_WIN32)
#define ENGINE_API
#else
#define ENGINE_API __attribute__((visibility("default")))
#endif
