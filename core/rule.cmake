add_library(segd_rule
  rule.cc
  rule_lexer.cc
  rule_parser.cc
  rule_checker.cc
  rule_polarity.cc
)
target_include_directories(segd_rule PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(segd_rule PUBLIC segd_base absl::status absl::statusor absl::strings
  absl::str_format absl::flat_hash_map absl::flat_hash_set PkgConfig::RE2)
