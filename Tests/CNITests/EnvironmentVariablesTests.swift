import Testing
#if canImport(Glibc)
import Glibc
#endif
import CNI

@Suite struct EnvironmentVariablesTests {
    @Test func givenVariablesAreLookedUpByWholeName() {
        let v: EnvironmentVariables = ["CNI_PATH": "/opt/cni/bin", "CNI_PATHS": "x"]
        #expect(v["CNI_PATH"] == "/opt/cni/bin")
        #expect(v["CNI_PATHS"] == "x")
        #expect(v["CNI_PAT"] == nil)
        #expect(v["CNI_COMMAND"] == nil)
    }

    @Test func ofTwoEntriesWithOneNameTheFirstCounts() {
        let v: EnvironmentVariables = ["A": "1", "A": "2", "B": ""]
        #expect(v["A"] == "1")
        #expect(v["B"] == "")
        #expect(v.all.map(\.name) == ["A", "B"])
    }

    @Test func theProcessEnvironmentIsReadInPlaceLikeGetenv() {
        setenv("BRIDGE_IPAM_TEST_VARIABLE", "with=equals", 1)
        setenv("BRIDGE_IPAM_TEST_VARIABLE_LONGER", "other", 1)
        defer {
            unsetenv("BRIDGE_IPAM_TEST_VARIABLE")
            unsetenv("BRIDGE_IPAM_TEST_VARIABLE_LONGER")
        }
        let v = EnvironmentVariables.process()
        #expect(v["BRIDGE_IPAM_TEST_VARIABLE"] == "with=equals")
        #expect(v["BRIDGE_IPAM_TEST_VARIABLE_LONGER"] == "other")
        #expect(v["BRIDGE_IPAM_TEST_VARIAB"] == nil)
        #expect(v["PATH"] == String(cString: getenv("PATH")))
        #expect(v.all.contains { $0.name == "BRIDGE_IPAM_TEST_VARIABLE" && $0.value == "with=equals" })
    }
}
