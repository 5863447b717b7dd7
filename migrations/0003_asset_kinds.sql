-- Assets gain kinds: the native coin, an ERC-20 token, or an NFT collection (ERC-721,
-- ERC-1155), whose base unit is one token (decimals 0) and whose caps count tokens.
-- Existing rows keep their meaning: no address is the native coin, else an ERC-20 token.
ALTER TABLE assets ADD COLUMN kind text NOT NULL DEFAULT 'erc20'
    CHECK (kind IN ('native', 'erc20', 'erc721', 'erc1155'));
UPDATE assets SET kind = 'native' WHERE address IS NULL;
ALTER TABLE assets ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE assets ADD CHECK ((kind = 'native') = (address IS NULL));
ALTER TABLE assets ADD CHECK (kind NOT IN ('erc721', 'erc1155') OR decimals = 0);
