#pragma once

namespace segd::segctl {

// Runs the segctl command line: finds the command named by the first words of argv,
// parses its flags, connects to --servers and runs it. Returns the exit code (ExitCode).
int RunCli(int argc, char** argv);

}  // namespace segd::segctl
