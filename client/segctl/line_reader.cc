#include "client/segctl/line_reader.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace segd::segctl {
namespace {

absl::Status FileError(const std::string& name, int error) {
  return absl::Status(
      error == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
      absl::StrCat(name, ": ", std::strerror(error)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  std::FILE* file = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (file == nullptr) return FileError(path, errno);
  struct stat info = {};
  uint64_t size = 0;
  if (fstat(fileno(file), &info) == 0 && S_ISREG(info.st_mode)) {
    size = static_cast<uint64_t>(info.st_size);
  }
  static constexpr size_t kBuffer = 1 << 20;
  std::setvbuf(file, nullptr, _IOFBF, kBuffer);
  return std::unique_ptr<LineReader>(new LineReader(file, path == "-" ? "stdin" : path, size));
}

LineReader::LineReader(std::FILE* file, std::string name, uint64_t size)
    : file_(file), name_(std::move(name)), size_(size) {}

LineReader::~LineReader() {
  std::free(buffer_);
  if (file_ != stdin) std::fclose(file_);
}

bool LineReader::Next(std::string_view* line) {
  errno = 0;
  const ssize_t n = getline(&buffer_, &capacity_, file_);
  if (n < 0) {
    if (std::ferror(file_)) status_ = FileError(name_, errno);
    return false;
  }
  ++line_number_;
  bytes_read_ += static_cast<uint64_t>(n);
  size_t length = static_cast<size_t>(n);
  while (length > 0 && (buffer_[length - 1] == '\n' || buffer_[length - 1] == '\r')) --length;
  *line = std::string_view(buffer_, length);
  return true;
}

double LineReader::fraction() const {
  if (size_ == 0) return -1;
  return static_cast<double>(bytes_read_) / static_cast<double>(size_);
}

}  // namespace segd::segctl
