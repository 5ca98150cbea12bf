"""The training script of the example, written against FLARE's Client API as FLARE's
TensorBoard example writes it; it knows nothing of flconfig.

Its data is made here (no download): 3x32x32 images of ten classes, each class a pattern of
its own plus noise, split among the sites by site number. It trains, logs its loss and
accuracy with FLARE's SummaryWriter (the server writes them to TensorBoard) and sends the
weights back with the received model's accuracy.
"""

import argparse

# (1) import nvflare client API
import nvflare.client as flare
import torch
from model import SimpleNetwork
from nvflare.app_common.app_constant import ModelName
from nvflare.client.tracking import SummaryWriter
from torch import nn, optim


def make_data(site_number, num_sites, train_size, test_size=200):
    """This site's training images and the common test set: (images, labels) each."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.randn(10, 3, 32, 32, generator=generator)
    total = train_size * num_sites + test_size
    labels = torch.randint(0, 10, (total,), generator=generator)
    images = patterns[labels] + 1.5 * torch.randn(total, 3, 32, 32, generator=generator)
    test = images[:test_size], labels[:test_size]
    mine = slice(test_size + (site_number - 1) * train_size, test_size + site_number * train_size)
    return (images[mine], labels[mine]), test


def evaluate(weights, test):
    net = SimpleNetwork()
    net.load_state_dict(weights)
    net.eval()
    with torch.no_grad():
        predicted = net(test[0]).argmax(1)
    return 100.0 * float((predicted == test[1]).float().mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--local_epochs", type=int, default=1)
    parser.add_argument("--train_size", type=int, default=320)
    parser.add_argument("--num_sites", type=int, default=2)
    args = parser.parse_args()

    # (2) initialize NVFlare client API
    flare.init()
    site = flare.get_site_name()
    site_number = int(site.rsplit("-", 1)[-1])
    torch.manual_seed(site_number)
    (x, y), test = make_data(site_number, args.num_sites, args.train_size)
    summary_writer = SummaryWriter()
    net = SimpleNetwork()
    best = None

    # (3) run continuously while the job runs
    while flare.is_running():
        # (4) receive FLModel from NVFlare
        input_model = flare.receive()

        if flare.is_train():
            # (5) train on the received model
            net.load_state_dict(input_model.params)
            criterion = nn.CrossEntropyLoss()
            optimizer = optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
            steps_per_epoch = (len(y) + args.batch_size - 1) // args.batch_size
            step = input_model.current_round * args.local_epochs * steps_per_epoch
            net.train()
            for _ in range(args.local_epochs):
                for start in range(0, len(y), args.batch_size):
                    optimizer.zero_grad()
                    loss = criterion(net(x[start:start + args.batch_size]), y[start:start + args.batch_size])
                    loss.backward()
                    optimizer.step()
                    summary_writer.add_scalar(tag="train_loss", scalar=loss.item(), global_step=step)
                    step += 1

            local_accuracy = evaluate(net.state_dict(), test)
            summary_writer.add_scalar(tag="local_accuracy", scalar=local_accuracy,
                                      global_step=input_model.current_round)
            if best is None or local_accuracy > best[0]:
                best = (local_accuracy, {k: v.clone() for k, v in net.state_dict().items()})

            # (6) the received model's accuracy, for the server's model selection
            accuracy = evaluate(input_model.params, test)
            print(f"({site}) round {input_model.current_round}: local accuracy {local_accuracy:.1f}, "
                  f"global model accuracy {accuracy:.1f}")
            flare.send(flare.FLModel(params=net.state_dict(), metrics={"accuracy": accuracy},
                                     meta={"NUM_STEPS_CURRENT_ROUND": args.local_epochs * steps_per_epoch}))

        elif flare.is_evaluate():
            flare.send(flare.FLModel(metrics={"accuracy": evaluate(input_model.params, test)}))

        elif flare.is_submit_model():
            if input_model.meta["submit_model_name"] != ModelName.BEST_MODEL or best is None:
                raise ValueError(f"no model {input_model.meta['submit_model_name']!r} to submit")
            flare.send(flare.FLModel(params=best[1]))


if __name__ == "__main__":
    main()
