-- OpenImages image size index (optional input `openimages.image_sizes`): a CSV with header
-- ImageID,Width,Height, one line per image. The release has no image sizes (the box CSV is normalised
-- and image_ids_and_rotation.csv carries byte sizes, not pixels), so this is a file the user makes from
-- the images (or a synthetic one for a run without image bytes). Values stay text: final_images
-- quarantines a non-number (invalid_number), and check_images compares them with the JPEG header.
-- A repeated ImageID keeps its first line.
-- Grain: one row per distinct ImageID. Parameters: $path.
SELECT "ImageID" AS image_id, arg_min("Width", ord) AS width, arg_min("Height", ord) AS height
FROM read_csv($path, header = true, delim = ',', quote = '', escape = '', all_varchar = true,
              columns = {'ImageID': 'VARCHAR', 'Width': 'VARCHAR', 'Height': 'VARCHAR'})
     WITH ORDINALITY AS t(ImageID, Width, Height, ord)
WHERE "ImageID" IS NOT NULL
GROUP BY "ImageID"
