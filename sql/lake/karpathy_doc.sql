-- Karpathy's dataset_coco.json / dataset_flickr30k.json: ONE object {"images": [...], "dataset": ...},
-- read whole (bounded by $max_object_size = file size).
-- Grain: one row (the document). Parameters: $path, $max_object_size.
SELECT images, dataset
FROM read_json(
    $path, format = 'unstructured', records = true, maximum_object_size = $max_object_size,
    columns = {
        'images': 'STRUCT(filepath VARCHAR, filename VARCHAR, imgid VARCHAR, split VARCHAR, cocoid VARCHAR, sentences STRUCT(raw VARCHAR, sentid VARCHAR)[])[]',
        'dataset': 'VARCHAR'
    }
)
