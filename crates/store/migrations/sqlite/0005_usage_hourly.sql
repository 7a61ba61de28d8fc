-- marketmeter schema v5 (SQLite): hourly rollups of usage, for reports over large histories.
--
-- One row per (product, hour, dimension, seller): the sum of the quantities and the number of
-- usage records. Triggers keep it in the same transaction as every insert or delete of a usage
-- record, so a report read from it always equals the sum of the stored records. Reports that do
-- not group by customer or tag read this table instead of scanning every record (see
-- src/reports.rs). Costs one small upsert per stored record.
CREATE TABLE usage_hourly (
    product_code   TEXT NOT NULL,
    hour           INTEGER NOT NULL,
    dimension      TEXT NOT NULL,
    seller_account TEXT NOT NULL,
    quantity       INTEGER NOT NULL,
    records        INTEGER NOT NULL,
    PRIMARY KEY (product_code, hour, dimension, seller_account)
) WITHOUT ROWID;

INSERT INTO usage_hourly (product_code, hour, dimension, seller_account, quantity, records)
SELECT product_code, hour, dimension, seller_account, SUM(quantity), COUNT(*)
FROM usage_records GROUP BY product_code, hour, dimension, seller_account;

CREATE TRIGGER usage_hourly_insert AFTER INSERT ON usage_records BEGIN
    INSERT INTO usage_hourly (product_code, hour, dimension, seller_account, quantity, records)
    VALUES (NEW.product_code, NEW.hour, NEW.dimension, NEW.seller_account, NEW.quantity, 1)
    ON CONFLICT (product_code, hour, dimension, seller_account) DO UPDATE
    SET quantity = quantity + excluded.quantity, records = records + 1;
END;

CREATE TRIGGER usage_hourly_delete AFTER DELETE ON usage_records BEGIN
    UPDATE usage_hourly SET quantity = quantity - OLD.quantity, records = records - 1
    WHERE product_code = OLD.product_code AND hour = OLD.hour
      AND dimension = OLD.dimension AND seller_account = OLD.seller_account;
    DELETE FROM usage_hourly
    WHERE product_code = OLD.product_code AND hour = OLD.hour
      AND dimension = OLD.dimension AND seller_account = OLD.seller_account AND records = 0;
END;

-- Usage records are never updated; should one ever be, its rollup moves with it.
CREATE TRIGGER usage_hourly_update
AFTER UPDATE OF product_code, hour, dimension, seller_account, quantity ON usage_records BEGIN
    UPDATE usage_hourly SET quantity = quantity - OLD.quantity, records = records - 1
    WHERE product_code = OLD.product_code AND hour = OLD.hour
      AND dimension = OLD.dimension AND seller_account = OLD.seller_account;
    DELETE FROM usage_hourly
    WHERE product_code = OLD.product_code AND hour = OLD.hour
      AND dimension = OLD.dimension AND seller_account = OLD.seller_account AND records = 0;
    INSERT INTO usage_hourly (product_code, hour, dimension, seller_account, quantity, records)
    VALUES (NEW.product_code, NEW.hour, NEW.dimension, NEW.seller_account, NEW.quantity, 1)
    ON CONFLICT (product_code, hour, dimension, seller_account) DO UPDATE
    SET quantity = quantity + excluded.quantity, records = records + 1;
END;
