// Data-parallel training from C++ (docs/distributed.md): run it as it is (the 4 shards in
// this process) or under a launcher (mpirun -np 2 build/examples/data_parallel): every
// process trains the same model on its shards of each batch and ends with the same
// parameters, bit for bit, whatever the number of processes. Rank 0 prints.
#include <cstdio>

#include <opgraph/datasets/synthetic.hpp>
#include <opgraph/frontends/nn.hpp>
#include <opgraph/frontends/train.hpp>
#include <opgraph/optim/communicator.hpp>

int main() {
  using namespace opgraph;
  try {
    // Under mpirun or mpiexec MPI; otherwise this process alone.
    std::unique_ptr<Communicator> comm =
        detect_mpi_launcher().empty() ? make_local_communicator() : open_mpi_communicator();

    Model model;
    auto x = nn::input(model.graph, "x", {N, 2});
    auto y = nn::input(model.graph, "y", {N});
    auto hidden = nn::relu(nn::dense(x, 16, "hidden"));
    model.graph.set_loss(nn::softmax_cross_entropy(nn::dense(hidden, 2, "out"), y));
    model.params = model.graph.init_params(3);

    TrainOptions options{.epochs = 20, .batch = 32, .seed = 3};
    options.communicator = comm.get();
    options.exchange.shards = 4;  // the result depends on this, never on the process count
    auto adam = make_adam({.lr = 0.01});
    const History history = fit(model, make_moons(400, 0.1, 1), *adam, options);

    if (comm->rank() == 0) {
      // The bits of the final loss and of one weight show that every process count agrees.
      std::printf("%s: final loss %.17g, hidden.W[0] %.17g\n", comm->name().c_str(), history.epochs.back().train_loss,
                  model.params.at("hidden.W").at(0));
      std::printf("{\"example\": \"data_parallel\", \"processes\": %d, \"train_loss\": %.17g}\n", comm->size(),
                  history.epochs.back().train_loss);
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "data_parallel: %s\n", e.what());
    return 1;
  }
}
