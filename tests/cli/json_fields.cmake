# Shared by the cli/*.cmake checks: read fields of the JSON document in
# ${json} (read from ${OUT}); a missing field fails the test naming it.
function(get_field var)
  string(JSON value ERROR_VARIABLE err GET "${json}" ${ARGN})
  if(err)
    message(FATAL_ERROR "${OUT}: missing field '${ARGN}': ${err}\n${json}")
  endif()
  set(${var} "${value}" PARENT_SCOPE)
endfunction()

function(get_length var)
  string(JSON value ERROR_VARIABLE err LENGTH "${json}" ${ARGN})
  if(err)
    message(FATAL_ERROR "${OUT}: missing array '${ARGN}': ${err}\n${json}")
  endif()
  set(${var} "${value}" PARENT_SCOPE)
endfunction()
