# vendor.cmake: the browser libraries of web/vendor/package.json (xterm.js,
# ...), installed with npm into the build folder and copied out for
# embed.cmake, so they are compiled into the axon binary and the pages
# fetch nothing from elsewhere at run time.
#   cmake -DSRC=web/vendor -DWORK=build/vendor -DOUT=build/vendor/web -P vendor.cmake
# npm runs once per package-lock.json (offline afterwards).  Without npm, or
# when the install fails, the build goes on without them: the pages that
# need a library say it is not built in.
file(READ ${SRC}/package.json pkg)
file(MAKE_DIRECTORY ${WORK} ${OUT})
file(READ ${SRC}/package-lock.json lock)
set(done "")
if(EXISTS ${WORK}/installed-lock.json)
  file(READ ${WORK}/installed-lock.json done)
endif()
if(NOT done STREQUAL lock)
  file(COPY ${SRC}/package.json ${SRC}/package-lock.json DESTINATION ${WORK})
  find_program(NPM npm)
  if(NPM)
    execute_process(COMMAND ${NPM} ci --no-audit --no-fund --ignore-scripts
                    WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  else()
    set(rc "npm is not installed (scripts/deps.sh build)")
  endif()
  if(rc EQUAL 0)
    file(WRITE ${WORK}/installed-lock.json "${lock}")
  else()
    message(WARNING "web/vendor: npm ci failed (${rc}): the pages that use these "
                    "libraries will say they are not built in\n${err}")
  endif()
endif()
string(JSON n LENGTH "${pkg}" embed)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON name MEMBER "${pkg}" embed ${i})
  string(JSON path GET "${pkg}" embed ${name})
  if(EXISTS ${WORK}/${path})
    execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${WORK}/${path} ${OUT}/${name})
  else()
    file(REMOVE ${OUT}/${name})
  endif()
endforeach()
