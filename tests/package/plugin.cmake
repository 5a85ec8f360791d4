# Builds examples/plugin out of tree against the installed package, checks its ops with
# the installed opgraph, and trains examples/plugin/moons.og with it.
#   cmake -DSOURCE_DIR=... -DPREFIX=... -DWORK_DIR=... -P plugin.cmake
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message("${out}")
  set(last_output "${out}" PARENT_SCOPE)
endfunction()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/plugin -B ${WORK_DIR} -DCMAKE_PREFIX_PATH=${PREFIX} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR})
run(${PREFIX}/bin/opgraph check --plugin ${WORK_DIR}/activations.so)
if(NOT last_output MATCHES "3 ops: 3 passed, 0 failed")
  message(FATAL_ERROR "opgraph check did not pass the plugin's three ops")
endif()
run(${PREFIX}/bin/opgraph train ${SOURCE_DIR}/examples/plugin/moons.og --plugin ${WORK_DIR}/activations.so
    --data moons:n=1000,noise=0.1,test=0.3,seed=1 --optim adam:lr=0.01 --epochs 60 --json)
string(JSON accuracy GET "${last_output}" test_accuracy)
message("test accuracy with the plugin's activations and loss: ${accuracy}")
if(NOT accuracy GREATER_EQUAL 0.95)  # NaN (null) fails too
  message(FATAL_ERROR "test accuracy ${accuracy} < 0.95")
endif()
