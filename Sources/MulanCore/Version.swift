/// The version of the mulan toolkit. The Python package in python/ (mulan-torch) carries the same
/// version (python/tests/test_version.py checks it).
public enum MulanVersion {
    public static let string = "0.16.0"
}
