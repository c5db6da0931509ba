// segctl: the command-line client of a segd cluster. The commands live in their own files
// (client/segctl/*_commands.cc); cli.cc finds the one named on the command line and runs it.
#include "client/segctl/cli.h"

int main(int argc, char** argv) { return segd::segctl::RunCli(argc, argv); }
