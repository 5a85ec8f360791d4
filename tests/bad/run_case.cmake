# Runs one case of tests/bad/cases.txt through the opgraph binary and checks it: the exit
# status, the exact error line (the last on stderr), no crash, hang or stack trace, and nothing left
# in the case's scratch folder.
#   cmake -DCASE=name -DMANIFEST=... -DOPGRAPH=... -DFILES=... -DGEN=... -DMODELS=...
#         -DPLUGINS=... -DSCRATCH=... -P run_case.cmake
cmake_minimum_required(VERSION 3.24)
file(READ ${MANIFEST} manifest)
string(REGEX MATCH "\n${CASE} \\| [^\n]*" line "\n${manifest}")
if(NOT line)
  message(FATAL_ERROR "no case '${CASE}' in ${MANIFEST}")
endif()
string(STRIP "${line}" line)
# name | exit | message | arguments
string(REGEX MATCH "^[^|]+\\| ([0-9]+) \\| (.*) \\|( (.*))?$" ok "${line}")
if(NOT ok)
  message(FATAL_ERROR "malformed case line: ${line}")
endif()
set(want_exit ${CMAKE_MATCH_1})
set(want_message "${CMAKE_MATCH_2}")
set(argstr "${CMAKE_MATCH_4}")

set(out_dir ${SCRATCH}/${CASE})
file(REMOVE_RECURSE ${out_dir})
file(MAKE_DIRECTORY ${out_dir})
foreach(text argstr want_message)
  string(REPLACE "@F@" "${FILES}" ${text} "${${text}}")
  string(REPLACE "@G@" "${GEN}" ${text} "${${text}}")
  string(REPLACE "@M@" "${MODELS}" ${text} "${${text}}")
  string(REPLACE "@P@" "${PLUGINS}" ${text} "${${text}}")
  string(REPLACE "@O@" "${out_dir}" ${text} "${${text}}")
endforeach()
separate_arguments(args UNIX_COMMAND "${argstr}")

execute_process(COMMAND ${OPGRAPH} ${args} WORKING_DIRECTORY ${out_dir} TIMEOUT 60
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
# The error is the last line (progress lines may come before it).
string(STRIP "${err}" err_stripped)
string(REGEX REPLACE ".*\n" "" last_line "${err_stripped}")
message("opgraph ${argstr}\nexit status: ${rc}\nstderr: ${err}")

set(problems "")
if(NOT rc MATCHES "^[0-9]+$")
  list(APPEND problems "did not exit normally: ${rc}")
elseif(NOT rc EQUAL want_exit)
  list(APPEND problems "exit status ${rc}, expected ${want_exit}")
endif()
if(want_message MATCHES "@HEX@")
  # Checksums of trained checkpoints depend on the compiler and CPU: @HEX@ stands for any
  # 0x... number, the rest of the line must match exactly.
  string(REGEX REPLACE "([][.*+?^$()|\\\\])" "\\\\\\1" pattern "${want_message}")
  string(REPLACE "@HEX@" "0x[0-9a-f]+" pattern "${pattern}")
  if(NOT last_line MATCHES "^${pattern}$")
    list(APPEND problems "last line of stderr:\n  ${last_line}\nexpected:\n  ${want_message}")
  endif()
elseif(NOT want_message STREQUAL "?" AND NOT last_line STREQUAL want_message)
  list(APPEND problems "last line of stderr:\n  ${last_line}\nexpected:\n  ${want_message}")
endif()
if(err MATCHES "terminate called|Aborted|Segmentation|[Ss]tack trace|Sanitizer|runtime error|core dumped")
  list(APPEND problems "crash report on stderr")
endif()
file(GLOB_RECURSE left LIST_DIRECTORIES true "${out_dir}/*" "${out_dir}/.*")
if(left)
  list(APPEND problems "left behind in its output folder: ${left}")
endif()
if(problems)
  string(REPLACE ";" "\n" problems "${problems}")
  message(FATAL_ERROR "${problems}")
endif()
