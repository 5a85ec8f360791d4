cmake_minimum_required(VERSION 3.24)
# The layering check must catch what it is for: a tree where graph/ reaches into frontends/
# through a quoted include, and one through <opgraph/...>, each must fail it.
foreach(spelling "\"../frontends/files.hpp\"" "<opgraph/frontends/files.hpp>" "\"frontends/files.hpp\"")
  file(REMOVE_RECURSE ${WORK})
  foreach(m graph ops optim datasets frontends)
    file(MAKE_DIRECTORY ${WORK}/${m})
  endforeach()
  file(WRITE ${WORK}/graph/bad.cpp "#include ${spelling}\n")
  execute_process(COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${WORK} -P ${CHECK} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "graph/ includes frontends/")
    message(FATAL_ERROR "the layering check let #include ${spelling} from graph/ through: ${err}")
  endif()
endforeach()
