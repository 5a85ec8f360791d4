// Where datasets live on this machine, and the sets compiled into the library.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <opgraph/datasets/dataset.hpp>

namespace opgraph {

/// The data folder: `folder` when given (the --data option), else $OPGRAPH_DATA, else "".
/// It holds subfolders laid out like the shared data: mnist/, small/, ...
std::string data_folder(const std::string& folder = {});

/// The subfolder `sub` of the data folder. Throws DataError saying what is missing and
/// how to point opgraph at it.
std::string find_data(const std::string& sub, const std::string& folder = {});

/// A small set compiled into the library: "iris" or "wine".
Dataset load_builtin(std::string_view name);
std::vector<std::string> builtin_datasets();

}  // namespace opgraph
