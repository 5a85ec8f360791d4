# Fixture of the bad-input corpus: valid checkpoints to damage, then the generated files.
#   cmake -DOPGRAPH=... -DMAKER=... -DMODELS=... -DGEN=... -P setup.cmake
cmake_minimum_required(VERSION 3.24)
file(REMOVE_RECURSE ${GEN})
file(MAKE_DIRECTORY ${GEN})
foreach(model iris xor two_layer_tanh)
  set(data ${model})
  if(model STREQUAL "two_layer_tanh")
    set(data moons:n=200)
  endif()
  execute_process(COMMAND ${OPGRAPH} train ${MODELS}/${model}.og --data ${data} --epochs 1 --quiet
                          --save ${GEN}/${model}.ckpt
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "training ${model} for a checkpoint failed (${rc}): ${err}")
  endif()
endforeach()
execute_process(COMMAND ${MAKER} ${GEN} ${GEN}/iris.ckpt RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "bad_input_files failed (${rc}): ${err}")
endif()
