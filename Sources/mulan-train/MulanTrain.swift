import ArgumentParser
import MulanCommands
import MulanTensor

@main
struct MulanTrain: AsyncParsableCommand {
    static let configuration = TrainCommand.configuration

    /// The allocation policy is set on the main thread before the command runs: glibc binds a
    /// thread to an arena at its first allocation, and `run()` executes on a Swift concurrency
    /// thread that does not exist yet here (`Tensor.keepFreedMemory`).
    static func main() async {
        Tensor.keepFreedMemory()
        await main(nil)
    }
}
