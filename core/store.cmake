add_library(segd_store
  interner.cc
  profile_codec.cc
  profile_store.cc
  profile_view.cc
)
target_include_directories(segd_store PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(segd_store PUBLIC segd_base absl::status absl::statusor absl::strings
  absl::str_format absl::flat_hash_map absl::flat_hash_set)
