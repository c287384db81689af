# The Windows build (MinGW-w64 cross, cmake/mingw-w64.cmake; `make windows`).
#
# What builds: libaxon (static libaxon.a and libaxon.dll), the core with
# the AFD-poll backend (src/core/win/backend_afd.c) and WSAPoll as the
# reference backend (AXON_BACKEND=poll), HTTP/1.1 with static files
# (static.c on src/core/win/fs_win.c), WebSocket with
# permessage-deflate (Debian's libz-mingw-w64-dev), TLS through SChannel,
# DNS on a worker thread, axon.exe (echo, cat, http, get), the examples
# and axon_unit.  Not here: `axon serve`, `axon cert` and `axon token`
# (SQLite, jansson, c-ares, hiredis and OpenSSL have no MinGW packages in
# Debian) and the io_uring/epoll backends.
set(AXON_WIN ${CMAKE_SOURCE_DIR}/src/core/win)
find_package(Threads REQUIRED)
set(ZLIB_USE_STATIC_LIBS ON) # libz.a: the programs and libaxon.dll need no zlib1.dll
find_package(ZLIB REQUIRED)

# Every source sees axwin.h first and finds the POSIX headers it names in
# src/core/win/include (see the comment at the top of axwin.h).
add_compile_options(-include ${AXON_WIN}/include/axwin.h -Wno-attributes -Wno-format -Wno-sign-compare)
include_directories(BEFORE ${AXON_WIN}/include)
add_link_options(-static)

# Executables get no import library: CMake's MinGW rule writes one per
# program (lib<name>.dll.a), and axon.exe's took the name of libaxon.dll's
# (libaxon.dll.a pointed programs linked to "the DLL" at axon.exe)
string(REPLACE "-Wl,--out-implib,<TARGET_IMPLIB>" "" CMAKE_C_LINK_EXECUTABLE
  "${CMAKE_C_LINK_EXECUTABLE}")

file(GLOB AXON_CORE_SRC CONFIGURE_DEPENDS src/core/*.c src/core/win/*.c)
list(FILTER AXON_CORE_SRC EXCLUDE REGEX
  "/(backend_epoll|backend_uring|conn_ring|dns|pty|tls|tls_cert)\\.c$")
file(GLOB AXON_PROTO_SRC CONFIGURE_DEPENDS src/proto/http/*.c src/proto/ws/*.c)
set(AXON_WIN_LIBS ws2_32 mswsock ntdll secur32 crypt32 bcrypt ZLIB::ZLIB Threads::Threads)

add_library(axon_obj OBJECT ${AXON_CORE_SRC} ${AXON_PROTO_SRC})
target_include_directories(axon_obj PUBLIC include PRIVATE src src/core)
target_compile_definitions(axon_obj PRIVATE AX_BUILDING)
target_link_libraries(axon_obj PRIVATE ZLIB::ZLIB)

add_library(axon_static STATIC $<TARGET_OBJECTS:axon_obj>)
set_target_properties(axon_static PROPERTIES OUTPUT_NAME axon)
target_include_directories(axon_static PUBLIC include)
target_link_libraries(axon_static PUBLIC ${AXON_WIN_LIBS})

add_library(axon_shared SHARED $<TARGET_OBJECTS:axon_obj>)
set_target_properties(axon_shared PROPERTIES OUTPUT_NAME axon)
target_include_directories(axon_shared PUBLIC include)
target_link_libraries(axon_shared PRIVATE ${AXON_WIN_LIBS})

# axon.exe: the subcommands without Linux-only dependencies
set(AXON_CLI_SRC src/cli/main.c src/cli/args.c src/cli/echo.c src/cli/cat.c src/cli/http.c
  src/cli/get.c src/cli/win/linux_only.c)
add_executable(axon ${AXON_CLI_SRC})
target_include_directories(axon PRIVATE src)
target_link_libraries(axon PRIVATE axon_static)

file(GLOB AXON_EXAMPLES CONFIGURE_DEPENDS examples/*.c)
foreach(src ${AXON_EXAMPLES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(ex_${name} ${src})
  set_target_properties(ex_${name} PROPERTIES OUTPUT_NAME ${name}
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/examples)
  target_link_libraries(ex_${name} PRIVATE axon_static)
endforeach()

# http_hello_dll.exe: an example linked to libaxon.dll (not the static
# library), so test_windows.py runs a program on the DLL too
add_executable(ex_http_hello_dll examples/http_hello.c)
set_target_properties(ex_http_hello_dll PROPERTIES OUTPUT_NAME http_hello_dll
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/examples)
target_link_libraries(ex_http_hello_dll PRIVATE axon_shared)
add_custom_command(TARGET ex_http_hello_dll POST_BUILD COMMAND ${CMAKE_COMMAND} -E
  copy_if_different $<TARGET_FILE:axon_shared> ${CMAKE_BINARY_DIR}/examples/)

# axon_unit.exe: the runner and the tests of what builds here (the list
# of tests that do not apply, and why, is in src/core/win/unit_skip.h)
set(AXON_UNIT_SRC)
foreach(t testutil ws_testutil test_addr test_alloc test_buf test_dns test_http_body_timeout
    test_http_client test_http_parser test_http_server test_http_stream_empty 
    test_loop test_loop_time test_slice test_tcp test_thread test_timer
    test_tls test_udp test_unix test_utf8 test_ws_client test_ws_frame
    test_ws_server)
  list(APPEND AXON_UNIT_SRC tests/unit/${t}.c)
endforeach()
add_executable(axon_unit tests/unit/win/runner.c tests/unit/win/test_schannel_server.c ${AXON_UNIT_SRC})
target_include_directories(axon_unit BEFORE PRIVATE tests/unit/win/include)
target_include_directories(axon_unit PRIVATE src tests/unit)
target_link_libraries(axon_unit PRIVATE axon_static)
