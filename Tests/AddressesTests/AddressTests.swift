import Testing
@testable import Addresses

@Suite struct AddressTests {
    @Test func parsesAndFormatsIPv4AndIPv6() {
        #expect(IPAddress("10.244.1.2") == .v4(0x0AF4_0102))
        #expect(IPAddress("10.244.1.2")?.description == "10.244.1.2")
        #expect(IPAddress("fd00::1")?.description == "fd00::1")
        #expect(IPAddress("FD00:0:0::0001")?.description == "fd00::1")
        #expect(IPAddress("10.244.1") == nil)
        #expect(IPAddress("10.244.1.256") == nil)
        #expect(IPAddress("hello") == nil)
    }

    @Test func networksKnowTheirBounds() throws {
        let n = try #require(IPNetwork(cidr: "10.244.1.0/24"))
        #expect(n.network.description == "10.244.1.0")
        #expect(n.last.description == "10.244.1.255")
        #expect(n.contains(IPAddress("10.244.1.77")!))
        #expect(!n.contains(IPAddress("10.244.2.1")!))
        #expect(IPNetwork(cidr: "10.244.1.5/24")?.isNetworkAddress == false)
        #expect(IPNetwork(cidr: "10.244.1.0/33") == nil)
        #expect(IPNetwork(cidr: "10.244.1.0") == nil)
        #expect(IPNetwork(cidr: "fd00::/64")?.last.description == "fd00::ffff:ffff:ffff:ffff")
    }

    @Test func advancingStopsAtTheEndOfTheAddressSpace() {
        #expect(IPAddress("255.255.255.255")!.advanced(by: 1) == nil)
        #expect(IPAddress("10.0.0.255")!.advanced(by: 1)?.description == "10.0.1.0")
    }
}
