add_library(segd_core
  change.cc
  change_log.cc
  cursor.cc
  segment_catalog.cc
  shard_executor.cc
  evaluator.cc
  shard.cc
  engine.cc
)
target_include_directories(segd_core PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(segd_core PUBLIC segd_rule segd_store absl::status absl::statusor
  absl::strings absl::str_format absl::flat_hash_map absl::flat_hash_set absl::synchronization
  absl::time spdlog::spdlog)
