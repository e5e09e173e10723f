// SwiftPM gives executables their own main; it hands over to libFuzzer.
import FuzzSupport

runFuzzer(fuzz)
