// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice What a contract that accepts ERC-721 safe transfers answers.
interface IErc721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}

/// @title TestNft721
/// @notice A minimal ERC-721 collection for walletgate's tests: transfers, safe transfers
///         that check the receiver, per-token approvals and operators. Every token is
///         minted in the constructor (tokenIds[i] to holders[i]); nothing is minted later.
contract TestNft721 {
    string public name;
    string public symbol;

    mapping(uint256 => address) private owners;
    mapping(address => uint256) private balances;
    mapping(uint256 => address) private tokenApprovals;
    mapping(address => mapping(address => bool)) private operators;

    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    constructor(string memory name_, string memory symbol_, address[] memory holders, uint256[] memory tokenIds) {
        require(holders.length == tokenIds.length, "holders and tokenIds differ in length");
        name = name_;
        symbol = symbol_;
        for (uint256 i = 0; i < holders.length; i++) {
            require(holders[i] != address(0), "mint to the zero address");
            require(owners[tokenIds[i]] == address(0), "token already minted");
            owners[tokenIds[i]] = holders[i];
            balances[holders[i]] += 1;
            emit Transfer(address(0), holders[i], tokenIds[i]);
        }
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        // ERC-165 itself, ERC-721, ERC-721 metadata (name and symbol only).
        return interfaceId == 0x01ffc9a7 || interfaceId == 0x80ac58cd || interfaceId == 0x5b5e139f;
    }

    function balanceOf(address owner) external view returns (uint256) {
        require(owner != address(0), "the zero address owns nothing");
        return balances[owner];
    }

    function ownerOf(uint256 tokenId) public view returns (address) {
        address owner = owners[tokenId];
        require(owner != address(0), "no such token");
        return owner;
    }

    function approve(address approved, uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        require(msg.sender == owner || operators[owner][msg.sender], "not the owner or an operator");
        tokenApprovals[tokenId] = approved;
        emit Approval(owner, approved, tokenId);
    }

    function getApproved(uint256 tokenId) external view returns (address) {
        ownerOf(tokenId);
        return tokenApprovals[tokenId];
    }

    function setApprovalForAll(address operator, bool approved) external {
        operators[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address owner, address operator) external view returns (bool) {
        return operators[owner][operator];
    }

    function transferFrom(address from, address to, uint256 tokenId) public {
        address owner = ownerOf(tokenId);
        require(owner == from, "from is not the owner");
        require(to != address(0), "transfer to the zero address");
        require(
            msg.sender == owner || operators[owner][msg.sender] || tokenApprovals[tokenId] == msg.sender,
            "not allowed to move this token"
        );
        delete tokenApprovals[tokenId];
        balances[from] -= 1;
        balances[to] += 1;
        owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function safeTransferFrom(address from, address to, uint256 tokenId) external {
        safeTransferFrom(from, to, tokenId, "");
    }

    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data) public {
        transferFrom(from, to, tokenId);
        if (to.code.length > 0) {
            bytes4 answer = IErc721Receiver(to).onERC721Received(msg.sender, from, tokenId, data);
            require(answer == IErc721Receiver.onERC721Received.selector, "receiver refused the token");
        }
    }
}
