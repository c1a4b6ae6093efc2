# Included through CMAKE_PROJECT_INCLUDE by run_fuzz.sh while the top-level CMakeLists.txt does
# not yet have `if(ENGINE_WITH_FUZZERS) add_subdirectory(fuzz) endif()`. Deferred to the end of
# the top-level file, so the fuzz targets see the same settings as everything else.
if(ENGINE_WITH_FUZZERS)
  set(ENGINE_FUZZ_LISTS ${CMAKE_CURRENT_LIST_DIR}/CMakeLists.txt)
  cmake_language(DEFER CALL include ${ENGINE_FUZZ_LISTS})
endif()
