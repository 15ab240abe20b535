# OpenMP for the CPU kernels, as an interface target `bertj_openmp`.
find_package(OpenMP REQUIRED COMPONENTS CXX)
add_library(bertj_openmp INTERFACE)
target_link_libraries(bertj_openmp INTERFACE OpenMP::OpenMP_CXX)
