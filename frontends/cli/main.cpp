// opgraph: train, evaluate and inspect models from the terminal. Process setup lives here
// (signals, standard streams, the final check of stdout); the commands are in run.cpp, so
// that the command-line fuzzer can drive them in-process.
#include "cli.hpp"

int main(int argc, char** argv) { return opgraph::cli::main_entry(argc, argv); }
