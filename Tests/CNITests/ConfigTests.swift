#if canImport(Glibc)
import Glibc
#endif
import Testing
#if canImport(Glibc)
import Glibc
#endif
import IPAM
import JSON
@testable import CNI
import Addresses

func parse(_ text: String) throws(CNIError) -> NetworkConfig { try NetworkConfig.parse(Array(text.utf8)) }

func code(of text: String) -> Int? {
    do {
        _ = try parse(text)
        return nil
    } catch { return error.code }
}

let minimal = #"{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"bridge-ipam","ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}"#

@Suite struct ConfigTests {
    @Test func minimalConfigGetsTheReferenceDefaults() throws {
        let c = try parse(minimal)
        #expect(c.bridge == "cni0")
        #expect(!c.isGateway)
        #expect(c.ipam.dataDir == "/var/lib/cni/networks")
        #expect(c.ipam.rangeSets.count == 1)
        #expect(c.ipam.rangeSets[0].ranges[0].gateway?.description == "10.244.1.1")
    }

    @Test func isDefaultGatewayImpliesIsGateway() throws {
        let c = try parse(
            #"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","subnet":"10.244.1.0/24"},"isDefaultGateway":true}"#)
        #expect(c.isGateway && c.isDefaultGateway)
    }

    @Test func rangesAndRoutesAreRead() throws {
        let c = try parse(
            #"""
            {"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local",
             "ranges":[[{"subnet":"10.244.1.0/24","rangeStart":"10.244.1.10","rangeEnd":"10.244.1.20","gateway":"10.244.1.254"}],[{"subnet":"fd00::/64"}]],
             "routes":[{"dst":"10.96.0.0/12"},{"dst":"0.0.0.0/0","gw":"10.244.1.254"}]}}
            """#)
        #expect(c.ipam.rangeSets.count == 2)
        #expect(c.ipam.rangeSets[0].ranges[0].rangeStart.description == "10.244.1.10")
        #expect(
            c.ipam.routes == [
                Route(dst: IPNetwork(cidr: "10.96.0.0/12")!), Route(dst: IPNetwork(cidr: "0.0.0.0/0")!, gw: IPAddress("10.244.1.254")),
            ])
    }

    @Test func undecodableJSONIsCode6() {
        #expect(code(of: "{not json") == 6)
        #expect(code(of: "[]") == 6)
    }

    @Test func unsupportedVersionIsCode1() {
        #expect(code(of: minimal.replacingVersion("2.0.0")) == 1)
        #expect(code(of: minimal.replacingVersion("banana")) == 1)
    }

    @Test(arguments: [
        #""subnet":"10.244.1.0/33""#, #""subnet":"10.244.1.5/24""#, #""subnet":"nonsense""#,
        #""subnet":"10.244.1.0/24","rangeStart":"10.244.2.1""#, #""subnet":"10.244.1.0/24","gateway":"10.0.0.1""#,
        #""ranges":[[{"subnet":"10.244.1.0/24"}],[{"subnet":"10.244.1.0/25"}]]"#, #""ranges":[]"#,
        #""subnet":"10.244.1.0/24","routes":[{"dst":"x"}]"#, #""subnet":"10.244.1.0/24","dataDir":"relative/dir""#,
    ])
    func invalidIPAMIsCode7(_ ipamFields: String) {
        let text = #"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local",\#(ipamFields)}}"#
        #expect(code(of: text) == 7)
    }

    @Test(arguments: ["../etc", "a/b", "", ".hidden", "x y"])
    func unsafeNetworkNamesAreCode7(_ name: String) {
        #expect(code(of: #"{"cniVersion":"1.1.0","name":"\#(name)","ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}"#) == 7)
    }

    @Test func wrongTypesAreCode7NamingTheField() {
        do {
            _ = try parse(#"{"cniVersion":"1.1.0","name":"n","isGateway":"yes","ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}"#)
            Issue.record("expected a failure")
        } catch {
            #expect(error.code == 7)
            #expect(error.msg.contains("isGateway"))
        }
    }

    @Test func errorMessagesNameTheNestedPath() {
        do {
            _ = try parse(
                #"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"},{"subnet":"bad"}]]}}"#)
            Issue.record("expected a failure")
        } catch {
            #expect(error.msg.contains("ipam.ranges[0][1].subnet"))
        }
    }

    @Test func missingIPAMOrBadBridgeNameIsCode7() {
        #expect(code(of: #"{"cniVersion":"1.1.0","name":"n"}"#) == 7)
        #expect(
            code(
                of:
                    #"{"cniVersion":"1.1.0","name":"n","bridge":"this-name-is-far-too-long","ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}"#
            ) == 7)
    }

    @Test func ipMasqExclusionsAreValidatedAndNeedTheBuiltInIPAM() throws {
        let c = try parse(
            #"{"cniVersion":"1.1.0","name":"n","ipMasq":true,"ipMasqExclude":["192.168.1.5/24"],"ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}"#
        )
        #expect(c.ipMasq && c.ipMasqExclude.map(\.description) == ["192.168.1.0/24"])
        #expect(
            code(
                of:
                    #"{"cniVersion":"1.1.0","name":"n","ipMasq":true,"ipMasqExclude":["x"],"ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}"#
            ) == 7)
        #expect(code(of: #"{"cniVersion":"1.1.0","name":"n","ipMasq":true,"ipam":{"type":"dhcp"}}"#) == 2)
    }

    @Test func aFIFOAsSubnetFileIsRefusedWithoutBlocking() {
        alarm(20)  // a watchdog: a regression dies instead of hanging the test run
        defer { alarm(0) }
        var template = Array("/tmp/bridge-ipam-fifo-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        defer {
            unlink(dir + "/subnet.env")
            rmdir(dir)
        }
        mkfifo(dir + "/subnet.env", 0o600)
        #expect(code(of: #"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","subnetFile":"\#(dir)/subnet.env"}}"#) == 7)
    }

    @Test func ipMasqExclusionsTakeBothFamiliesUpToTheCap() throws {
        func config(_ count: Int) -> String {
            let list = (0..<count).map { "\"172.\(16 + $0 / 256).\($0 % 256).0/24\"" }.joined(separator: ",")
            return
                #"{"cniVersion":"1.1.0","name":"n","ipMasq":true,"ipMasqExclude":["fd00:1::/64",\#(list)],"ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}"#
        }
        let c = try parse(config(NetworkConfig.maxMasqueradeExclusions - 1))
        #expect(c.ipMasqExclude.first?.description == "fd00:1::/64")
        #expect(c.ipMasqExclude.count == NetworkConfig.maxMasqueradeExclusions)
        var error: CNIError?
        do { _ = try parse(config(NetworkConfig.maxMasqueradeExclusions)) } catch let e { error = e }
        #expect(error?.code == 7)
        #expect(error?.msg.contains("ipMasqExclude") == true)
    }

    @Test func otherIPAMTypesAreNotValidatedHere() throws {
        let c = try parse(#"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"dhcp"}}"#)
        #expect(!c.ipam.isBuiltIn)
    }

    @Test func gcAttachmentsAreRead() throws {
        let c = try parse(
            #"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","subnet":"10.244.1.0/24"},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#
        )
        #expect(c.validAttachments == [LeaseOwner(containerID: "a", ifname: "eth0")])
    }

    @Test func resolvConfIsParsed() {
        let dns = DNS.parseResolvConf(
            "# comment\nnameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n")
        #expect(dns.nameservers == ["10.96.0.10"])
        #expect(dns.search == ["default.svc.cluster.local", "svc.cluster.local"])
        #expect(dns.options == ["ndots:5"])
    }
}

extension String {
    func replacingVersion(_ v: String) -> String {
        split(separator: "1.1.0", maxSplits: 1).joined(separator: v)
    }
}

@Suite struct NodeSubnetTests {
    @Test func flannelSubnetEnvGivesSubnetGatewayAndClusterCIDR() throws {
        let node = try NodeSubnet.parse(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
        #expect(node.subnet.description == "10.244.1.0/24")
        #expect(node.gateway?.description == "10.244.1.1")
        #expect(node.clusterCIDR?.description == "10.244.0.0/16")
        #expect(node.mtu == 1450)
    }

    @Test func crlfQuotesAndSpacesAreReadByteByByte() throws {
        let node = try NodeSubnet.parse(
            "# written on Windows\r\n  FLANNEL_SUBNET=\"10.244.3.1/24\"\r\nFLANNEL_MTU='1400'\t\r\n\r\nfd00:10:244:3::/64\r\n")
        #expect(node.subnet.description == "10.244.3.0/24" && node.gateway?.description == "10.244.3.1")
        #expect(node.mtu == 1400 && node.otherSubnets.map(\.description) == ["fd00:10:244:3::/64"])
        #expect(throws: NodeSubnet.ParseError.invalid(key: "line", value: "10.244.3.0/33")) { try NodeSubnet.parse("10.244.3.0/33\r\n") }
        #expect(throws: NodeSubnet.ParseError.noSubnet) { try NodeSubnet.parse("\r\n \t\n#x\n=\n") }
    }

    @Test func theAgentsFileCarriesTheMTUAfterItsCIDRs() throws {
        let node = try NodeSubnet.parse("10.244.2.0/24\nfd00:10:244:2::/64\nFLANNEL_MTU=1450\n")
        #expect(node.mtu == 1450 && node.otherSubnets.count == 1)
        #expect(try NodeSubnet.parse("10.244.2.0/24\n").mtu == nil)
        #expect(throws: NodeSubnet.ParseError.invalid(key: "FLANNEL_MTU", value: "67")) {
            try NodeSubnet.parse("10.244.2.0/24\nFLANNEL_MTU=67\n")
        }
        #expect(throws: NodeSubnet.ParseError.invalid(key: "FLANNEL_MTU", value: "65536")) {
            try NodeSubnet.parse("10.244.2.0/24\nFLANNEL_MTU=65536\n")
        }
    }

    @Test func aBarePodCIDRLineIsTheSubnet() throws {
        let node = try NodeSubnet.parse("10.244.2.0/24\n")
        #expect(node.subnet.description == "10.244.2.0/24")
        #expect(node.gateway == nil)
    }

    @Test func aDualStackNodeHasOneLinePerFamily() throws {
        let node = try NodeSubnet.parse("10.244.2.0/24\nfd00:10:244:2::/64\n")
        #expect(node.subnet.description == "10.244.2.0/24")
        #expect(node.otherSubnets.map(\.description) == ["fd00:10:244:2::/64"])
        #expect(throws: NodeSubnet.ParseError.twoOfAFamily("10.244.3.0/24")) { try NodeSubnet.parse("10.244.2.0/24\n10.244.3.0/24\n") }
    }

    @Test func aDualStackSubnetFileGivesARangeSetPerFamily() throws {
        let path = "/tmp/bridge-ipam-subnet-test-\(getpid())"
        let file = fopen(path, "w")
        fputs("10.244.2.0/24\nfd00:10:244:2::/64\n", file)
        fclose(file)
        defer { unlink(path) }
        let c = try parse(
            #"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","subnetFile":"\#(path)","clusterCIDR":"10.244.0.0/16"}}"#)
        #expect(c.ipam.rangeSets.map { $0.ranges[0].subnet.description } == ["10.244.2.0/24", "fd00:10:244:2::/64"])
    }

    @Test func garbageIsRejected() {
        #expect(throws: NodeSubnet.ParseError.noSubnet) { try NodeSubnet.parse("# nothing\n") }
        #expect(throws: NodeSubnet.ParseError.invalid(key: "FLANNEL_SUBNET", value: "x")) { try NodeSubnet.parse("FLANNEL_SUBNET=x") }
    }

    @Test func aMissingSubnetFileIsCode7NamingIt() {
        do {
            _ = try parse(#"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","subnetFile":"/nonexistent/subnet.env"}}"#)
            Issue.record("expected a failure")
        } catch {
            #expect(error.code == 7)
            #expect(error.msg.contains("/nonexistent/subnet.env"))
        }
    }

    @Test func aSubnetOutsideTheClusterCIDRIsCode7() {
        #expect(
            code(
                of:
                    #"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","subnet":"10.245.1.0/24","clusterCIDR":"10.244.0.0/16"}}"#
            ) == 7)
        #expect(
            code(
                of:
                    #"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local","subnet":"10.244.1.0/24","clusterCIDR":"10.244.0.0/16"}}"#
            ) == nil)
    }
}
