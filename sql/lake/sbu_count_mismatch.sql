-- SBU JSON rows whose parallel lists differ in length (image_urls vs captions), from table web_rows
-- (sbu_rows.sql): any such row means the lists cannot be paired and the file is refused.
-- Grain: one row (NULLs when every row pairs up). Parameters: none.
SELECT any_value(n_urls) AS n_urls, any_value(n_captions) AS n_captions
FROM web_rows
WHERE n_urls <> n_captions
