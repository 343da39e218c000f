# ctest: `fanin bench --mode cpu-profile` and `--mode cpu-encoder` (short
# smoke runs) print JSON with the figures docs/performance.md quotes. Skips
# (return code 77) when the model folder is missing. Usage:
#   cmake -DFANIN=<fanin exe> -DMODEL=<folder> -DSENTENCES=<file> -DOUT=<json file>
#         -P bench_cpu_smoke.cmake
cmake_minimum_required(VERSION 3.19)  # string(JSON)
if(NOT EXISTS "${MODEL}/model.safetensors")
  message("${MODEL} is missing (scripts/fetch_models.sh): skipped")
  cmake_language(EXIT 77)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/json_fields.cmake)

file(REMOVE "${OUT}")
execute_process(COMMAND "${FANIN}" bench --model minilm --mode cpu-profile --model-dir "${MODEL}"
                        --sentences "${SENTENCES}"
                        --cpu-batch 8 --seconds 0.3 --warmup-seconds 0 --out "${OUT}"
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE stderr TIMEOUT 120)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cpu-profile exited with '${rc}':\n${stderr}")
endif()
file(READ "${OUT}" json)
get_field(isa machine isa)
get_field(core machine openblas_core)
get_field(layout layouts 0 layout)
get_field(gemm_rate layouts 0 ops gemm gflop_per_s)
get_field(wall layouts 0 wall_ms_per_batch)
get_field(padded_rows layouts 1 gemm_rows)
get_field(packed_rows layouts 0 gemm_rows)
get_field(peak sgemm_peak gflop_per_s)
get_field(tokens_per_s tokenizer tokens_per_s)
if(NOT layout STREQUAL "packed" OR NOT gemm_rate GREATER 0 OR NOT peak GREATER 0 OR
   NOT tokens_per_s GREATER 0 OR NOT wall GREATER 0)
  message(FATAL_ERROR "cpu-profile figures are missing or zero:\n${json}")
endif()
if(packed_rows GREATER padded_rows)
  message(FATAL_ERROR "packed batch has more GEMM rows (${packed_rows}) than padded (${padded_rows})")
endif()

file(REMOVE "${OUT}")
execute_process(COMMAND "${FANIN}" bench --model minilm --mode cpu-encoder --model-dir "${MODEL}"
                        --sentences "${SENTENCES}"
                        --threads 1,0 --cpu-sentences 48 --max-batch 16 --out "${OUT}"
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE stderr TIMEOUT 120)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cpu-encoder exited with '${rc}':\n${stderr}")
endif()
file(READ "${OUT}" json)
get_length(n results)
if(NOT n EQUAL 2)
  message(FATAL_ERROR "cpu-encoder: ${n} results, expected 2:\n${json}")
endif()
get_field(w0 results 0 workers)
get_field(sps results 1 sentences_per_s)
get_field(cores machine affinity_cores)
get_field(w1 results 1 workers)
if(NOT w0 EQUAL 1 OR NOT w1 EQUAL cores OR NOT sps GREATER 0)
  message(FATAL_ERROR "cpu-encoder: workers ${w0}, ${w1} (cores ${cores}), ${sps} sentences/s:\n${json}")
endif()
