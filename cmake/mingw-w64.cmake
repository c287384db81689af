# Cross-compiling axon for 64-bit Windows with Debian's MinGW-w64
# (gcc-mingw-w64-x86-64, posix threads for winpthreads):
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(AXON_MINGW x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${AXON_MINGW}-gcc-posix)
set(CMAKE_RC_COMPILER ${AXON_MINGW}-windres)
set(CMAKE_FIND_ROOT_PATH /usr/${AXON_MINGW})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Tests run the .exe files under Wine.
set(CMAKE_CROSSCOMPILING_EMULATOR wine)
